"""The datagram targets' shared part: fuzz input <-> a batch of datagrams, seeds from recorded exports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from flowscope.collect.datagrams import Datagrams
from flowscope.collect.exports import iter_export_datagrams
from flowscope.diagnostics import Skips
from fuzz.harness import join_datagrams, seed_files, split_datagrams

RECEIVED_NS = 1_700_000_000 * 10**9
_EXPORTERS = np.zeros((2, 16), np.uint8)
_EXPORTERS[:, 10:12] = 0xFF
_EXPORTERS[:, 12:] = [[192, 0, 2, 1], [192, 0, 2, 2]]


def batch_of(data: bytes) -> Datagrams:
    """The input's datagrams, from two exporters in turn (templates are scoped per exporter)."""
    payloads = split_datagrams(data)
    rows = np.arange(len(payloads)) % 2
    return Datagrams(payloads, _EXPORTERS[rows], RECEIVED_NS + rows)


def recorded(*patterns: str) -> Iterator[bytes]:
    """Each capture's export datagrams as one input (templates before their data, as recorded)."""
    for path in seed_files(*patterns):
        try:
            payloads = [p for batch in iter_export_datagrams([Path(path)], Skips()) for p in batch.payloads]
        except Exception:  # a seed that is no capture of exports is simply not a seed
            continue
        if payloads:
            yield join_datagrams(payloads)
