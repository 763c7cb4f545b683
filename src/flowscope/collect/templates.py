"""NetFlow v9 / IPFIX templates: what each exporter said its records look like.

Templates are scoped per (exporter address, protocol version, observation domain / source
id, template id) as RFC 7011 section 8 requires. Data that arrives before its template
is held (bounded) and decoded when the template comes. The store is saved as JSON
beside the lake (atomically) so a restarted collector decodes at once instead of
dropping data until every exporter resends its templates.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import OrderedDict
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow as pa

from flowscope import addresses
from flowscope.collect.fields import VARIABLE_LENGTH, FieldKey, header_layers
from flowscope.schema import ADDRESS

TemplateKey = tuple[bytes, int, int, int]
"""(exporter 16 bytes, version 9/10, domain, template id)."""

DomainKey = tuple[bytes, int, int]
"""(exporter 16 bytes, version, domain): the scope of one exporting process."""

STATE_FILE = "_collector/templates.json"
"""Where in the lake directory templates persist."""


@dataclass(frozen=True)
class Field:
    element: int
    length: int
    enterprise: int = 0

    @property
    def key(self) -> FieldKey:
        return (self.enterprise, self.element)


@dataclass(frozen=True)
class Template:
    """One (options) template; ``scope_count`` > 0 marks an options template (its first fields are scopes)."""

    template_id: int
    fields: tuple[Field, ...]
    scope_count: int = 0

    @property
    def is_options(self) -> bool:
        return self.scope_count > 0

    @cached_property
    def record_length(self) -> int | None:
        """Bytes per record, or None when a variable-length element makes it differ per record."""
        if any(f.length == VARIABLE_LENGTH for f in self.fields):
            return None
        return sum(f.length for f in self.fields)

    @cached_property
    def min_record_length(self) -> int:
        """Smallest possible record: variable-length elements take at least their 1-byte length prefix."""
        return sum(1 if f.length == VARIABLE_LENGTH else f.length for f in self.fields)

    def offsets(self, tunnels: str = "outer") -> dict[FieldKey, tuple[int, int]]:
        """Element -> (index, byte offset) of the occurrence to read; offsets are only valid for fixed-length.

        Header elements (``fields.header_layers``) are those of one header: the outermost, or with
        ``tunnels="inner"`` the innermost the template describes; a header element that header lacks
        is absent, so no column mixes headers. Other elements: their first occurrence.
        """
        return self._offsets_by_layer[tunnels == "inner"]

    @cached_property
    def _offsets_by_layer(self) -> tuple[dict[FieldKey, tuple[int, int]], dict[FieldKey, tuple[int, int]]]:
        layers = header_layers([field.key for field in self.fields])
        innermost = max((layer for layer in layers if layer is not None), default=0)
        views: list[dict[FieldKey, tuple[int, int]]] = []
        for chosen in (0, innermost):
            out: dict[FieldKey, tuple[int, int]] = {}
            offset = 0
            for index, (field, layer) in enumerate(zip(self.fields, layers, strict=True)):
                if layer is None or layer == chosen:
                    out.setdefault(field.key, (index, offset))
                offset += field.length
            views.append(out)
        return views[0], views[1]

    def to_json(self) -> dict:
        return {
            "template_id": self.template_id,
            "scope_count": self.scope_count,
            "fields": [[f.element, f.length, f.enterprise] for f in self.fields],
        }

    @classmethod
    def from_json(cls, data: dict) -> Template:
        return cls(
            int(data["template_id"]),
            tuple(Field(int(e), int(n), int(p)) for e, n, p in data["fields"]),
            int(data.get("scope_count", 0)),
        )


@dataclass(frozen=True)
class HeldSet:
    """A data set whose template was unknown when it arrived, with the header context it needs."""

    context: tuple
    body: bytes


MAX_TEMPLATES = 100_000
"""Templates one collector keeps: 1,000 exporters with 100 each; a few hundred MB at most."""


class TemplateStore:
    """Known templates plus a bounded buffer of data sets waiting for theirs."""

    def __init__(self, *, hold_bytes: int = 8 << 20, max_templates: int = MAX_TEMPLATES) -> None:
        self.templates: dict[TemplateKey, Template] = {}
        self.max_templates = max_templates
        self.refused_templates = 0
        """New templates refused because the store was full (their data is then held, and dropped)."""
        self.held: OrderedDict[TemplateKey, list[HeldSet]] = OrderedDict()
        self.hold_bytes = hold_bytes
        self.held_size = 0
        self.dropped_sets = 0
        """Held sets evicted because the buffer was full (oldest first)."""
        self.changed = False
        self.touched: set[DomainKey] = set()
        """Domains whose templates this process learnt or withdrew: its word on them beats the saved file's."""

    def get(self, key: TemplateKey) -> Template | None:
        return self.templates.get(key)

    def add(self, key: TemplateKey, template: Template) -> list[HeldSet]:
        """Learn (or redefine) a template; returns the held data sets it unblocks. A new template beyond
        ``max_templates`` is refused and counted: exporters are UDP senders anyone can spoof, and each template
        is kept (and saved) until withdrawn."""
        if key not in self.templates and len(self.templates) >= self.max_templates:
            self.refused_templates += 1
            return []
        self.touched.add(key[:3])
        if self.templates.get(key) != template:
            self.templates[key] = template
            self.changed = True
        released = self.held.pop(key, [])
        self.held_size -= sum(len(s.body) for s in released)
        return released

    def withdraw(self, key: TemplateKey) -> None:
        self.touched.add(key[:3])
        if self.templates.pop(key, None) is not None:
            self.changed = True

    def withdraw_all(self, domain: DomainKey, *, options: bool) -> None:
        """IPFIX all-templates withdrawal (template id = set id, RFC 7011 section 8.1) for one kind."""
        self.touched.add(domain)
        doomed = [k for k, t in self.templates.items() if k[:3] == domain and t.is_options == options]
        for key in doomed:
            del self.templates[key]
        self.changed = self.changed or bool(doomed)

    def hold(self, key: TemplateKey, held: HeldSet) -> None:
        """Keep a data set until its template arrives, evicting the oldest sets beyond ``hold_bytes``."""
        if len(held.body) > self.hold_bytes:
            self.dropped_sets += 1
            return
        self.held.setdefault(key, []).append(held)
        self.held_size += len(held.body)
        while self.held_size > self.hold_bytes:
            oldest_key, sets = next(iter(self.held.items()))
            evicted = sets.pop(0)
            self.held_size -= len(evicted.body)
            self.dropped_sets += 1
            if not sets:
                del self.held[oldest_key]

    @property
    def held_sets(self) -> int:
        return sum(len(v) for v in self.held.values())

    # persistence -------------------------------------------------------------------------------------

    def to_json(self) -> dict:
        return {
            "version": 1,
            "templates": [
                {"exporter": addresses.format_one(k[0]), "netflow_version": k[1], "domain": k[2], **t.to_json()}
                for k, t in sorted(self.templates.items())
            ],
        }

    def load_json(self, data: dict) -> None:
        """Take the saved templates of every domain this process has not spoken for itself."""
        self.templates = {k: t for k, t in self.templates.items() if k[:3] in self.touched}
        for item in data.get("templates", []):
            key = (addresses.parse_one(item["exporter"]), int(item["netflow_version"]), int(item["domain"]))
            if key not in self.touched:
                template = Template.from_json(item)
                self.templates[(*key, template.template_id)] = template

    def table(self) -> pa.Table:
        """One row per known template, for ``flowscope templates`` and the collector's status."""
        keys = sorted(self.templates)
        rows = [self.templates[k] for k in keys]
        matrix = np.frombuffer(b"".join(k[0] for k in keys), np.uint8).reshape(-1, 16)
        return pa.table(
            {
                "exporter": addresses.from_ipv6_bytes(matrix) if keys else pa.array([], ADDRESS),
                "version": pa.array([k[1] for k in keys], pa.uint16()),
                "domain": pa.array([k[2] for k in keys], pa.uint32()),
                "template_id": pa.array([k[3] for k in keys], pa.uint16()),
                "kind": pa.array(["options" if t.is_options else "data" for t in rows], pa.string()),
                "field_count": pa.array([len(t.fields) for t in rows], pa.uint16()),
                "record_length": pa.array([t.record_length for t in rows], pa.uint32()),
                "fields": pa.array(
                    [" ".join(describe(f) for f in t.fields) for t in rows],
                    pa.string(),
                ),
            }
        )


def describe(field: Field) -> str:
    """``element/length`` (``pen:element/length`` for enterprise elements, ``*`` for variable length)."""
    length = "*" if field.length == VARIABLE_LENGTH else str(field.length)
    prefix = f"{field.enterprise}:" if field.enterprise else ""
    return f"{prefix}{field.element}/{length}"


def write_json_atomically(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
