"""Everything a reader is opened with: ``ReadOptions``, one typed options object per reader family plus what
every reader shares (the ingest reduction, the columns a program needs).

``Reader.open(paths, ReadOptions)`` needs no command line: a Kafka consumer, a Spark executor or a
web server builds the dataclasses; ``flowscope.cli.options`` builds them from flags. Each family's
values are checked when its dataclass is built.

``fingerprint(reader_name)`` names the options that shape one reader's output (a capture's metering,
a CSV's time zone, ...), so the same file read with other such options is told apart as another
input, while an option that reader ignores changes nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa

from flowscope.capture.options import MeterOptions
from flowscope.collect.options import ExportOptions
from flowscope.errors import FlowscopeError
from flowscope.nfdump.options import RecordSelection
from flowscope.readers import registry
from flowscope.readers.text_options import TextOptions
from flowscope.reduce import Reduction
from flowscope.reduce.apply import Reducer
from flowscope.transforms.anonymize import Anonymizer
from flowscope.transforms.enrich import EnrichConfig

FINGERPRINT_CHARS = 16
"""Hex digits of the SHA-256 kept: 64 bits, no collision among any realistic number of option sets."""


@dataclass(frozen=True)
class ReadOptions:
    meter: MeterOptions = field(default_factory=MeterOptions)
    """Captures (``pcap``): how packets become flows."""
    text: TextOptions = field(default_factory=TextOptions)
    """Line-oriented text: flow CSVs and JSON lines (``csv``, ``jsonl`` and their dialect-forcing readers)."""
    exports: ExportOptions = field(default_factory=ExportOptions)
    """Recorded flow exports (``exports``)."""
    selection: RecordSelection = field(default_factory=RecordSelection)
    """nfdump files (``nfdump``)."""
    reduce: Reduction | None = None
    """Keyed reduction applied to each batch read (all readers)."""
    columns: tuple[str, ...] | None = None
    """The flow columns the consumer needs (programs only): readers that can skip the others do, leaving them null."""
    enrich: EnrichConfig | None = None
    """Enrichment applied to each batch read, after the reduction (``flowscope.transforms.enrich``)."""
    anonymize: bytes | None = field(default=None, repr=False)
    """Crypto-PAn key: every address anonymised, last (after enrichment has seen the real addresses)."""
    workers: int = 1
    """Captures: processes metering a folder's files in parallel (``flowscope.jobs``); shapes nothing."""

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise FlowscopeError(f"--workers must be at least 1, not {self.workers}")

    def transforms(self, *, per_batch_reduce: bool = True) -> list[Callable[[pa.Table], pa.Table]]:
        """The batch transforms of the ingest (``pipeline.run``); builds them (an enrichment loads its databases).
        Without ``per_batch_reduce`` the reduction is left out (a ``WholeReduction`` stage runs it, then these)."""
        transforms: list[Callable[[pa.Table], pa.Table]] = []
        if self.reduce is not None and per_batch_reduce:
            transforms.append(Reducer(self.reduce))
        if self.enrich is not None:
            from flowscope.transforms.enrich import Enricher

            transforms.append(Enricher(self.enrich))
        if self.anonymize is not None:
            transforms.append(Anonymizer(self.anonymize))
        return transforms

    def fingerprint(self, reader_name: str) -> str:
        """A short stable digest of the options that shape the output of reader ``reader_name``.

        Equal options give equal fingerprints across processes and versions of Python; an option the
        reader does not use (``commit_rows`` for a capture) leaves it unchanged.
        """
        reader = registry.get(reader_name)
        shaping = {
            "reader": reader.name,
            "options": reader.shaping(self),
            "reduce": None if self.reduce is None else _reduction_shaping(self.reduce),
            "columns": None if self.columns is None else sorted(self.columns),
        }
        if self.enrich is not None:  # only when set: fingerprints of unenriched reads stay what they were
            shaping["enrich"] = self.enrich.shaping()
        if self.anonymize is not None:  # the key's digest, never the key
            shaping["anonymize"] = hashlib.sha256(b"flowscope anonymize " + self.anonymize).hexdigest()
        canonical = json.dumps(shaping, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:FINGERPRINT_CHARS]


def _reduction_shaping(reduction: Reduction) -> dict[str, object]:
    """What a reduction does, not what it is called (a spec file's name is its file name)."""
    return {"key": list(reduction.key), "fields": dict(reduction.fields), "default": reduction.default}
