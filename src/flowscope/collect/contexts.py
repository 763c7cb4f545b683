"""Per-message context of a batch's records: who exported them, when, with which header values.

Every decoded record points at one context row (its message, or a held data set's original
message), so header values become record columns by one gather.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flowscope.collect.fields import IPFIX
from flowscope.collect.simple import SimpleDatagrams
from flowscope.collect.templates import DomainKey


@dataclass
class Contexts:
    """Per-context-row arrays (one row per message or released held set)."""

    exporter: np.ndarray
    received_ns: np.ndarray
    version: np.ndarray
    domain: np.ndarray
    sequence: np.ndarray
    export_secs: np.ndarray
    uptime_ms: np.ndarray
    domain_index: np.ndarray
    domains: list[DomainKey]

    @classmethod
    def of(
        cls,
        contexts: list[tuple],
        simple: SimpleDatagrams | None,
        simple_exporters: np.ndarray,
        simple_received: np.ndarray,
    ) -> Contexts:
        """Arrays of the parsed contexts (tuples of (exporter, received_ns, version, domain, sequence,
        export_secs, uptime_ms)) followed by those of the simple datagrams."""
        exporter, received, version, domain, sequence, export_secs, uptime = (
            zip(*contexts, strict=True) if contexts else ((),) * 7
        )
        exporters = np.concatenate([np.frombuffer(b"".join(exporter), np.uint8).reshape(-1, 16), simple_exporters])

        def column(values: tuple, extra: np.ndarray | None, dtype: type) -> np.ndarray:
            """The parsed contexts' values, then the simple datagrams' (``extra``, None when there are none)."""
            parsed: np.ndarray = np.asarray(values, dtype)
            return parsed if extra is None else np.concatenate([parsed, extra.astype(dtype)])

        def simple_field(name: str) -> np.ndarray | None:
            return None if simple is None else getattr(simple, name)

        versions = column(version, simple_field("version"), np.uint16)
        domains = column(domain, simple_field("domain"), np.uint32)
        domain_index, first_rows = factorize_domains(exporters, versions, domains)
        return cls(
            exporter=exporters,
            received_ns=column(received, None if simple is None else simple_received, np.int64),
            version=versions,
            domain=domains,
            sequence=column(sequence, simple_field("sequence"), np.uint32),
            export_secs=column(export_secs, simple_field("export_secs"), np.int64),
            uptime_ms=column(uptime, simple_field("uptime_ms"), np.int64),
            domain_index=domain_index,
            domains=[(exporters[r].tobytes(), int(versions[r]), int(domains[r])) for r in first_rows.tolist()],
        )


def factorize_domains(
    exporters: np.ndarray, versions: np.ndarray, domains: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Index of each row's (exporter, version, domain) among the distinct ones, and each one's first row.

    Integer keys throughout: factorizing 16-byte rows directly (``np.unique(axis=0)``) is far slower.
    """
    halves = np.ascontiguousarray(exporters).view(np.uint64).reshape(-1, 2)
    _, high = np.unique(halves[:, 0], return_inverse=True)
    _, low = np.unique(halves[:, 1], return_inverse=True)
    exporter_code = high.reshape(-1).astype(np.int64) * (int(low.max(initial=0)) + 1) + low.reshape(-1)
    key = ((exporter_code * 2 + (versions == IPFIX)) << 32) | domains.astype(np.int64)
    _, first_rows, index = np.unique(key, return_index=True, return_inverse=True)
    return index.reshape(-1).astype(np.int64), first_rows
