"""Interim: one run metered whole (exact without stitching); replaced by ``jobs.stitch`` once it lands."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import pyarrow as pa

from flowscope.capture.files import iter_packet_batches
from flowscope.capture.meter import FlowMeter
from flowscope.capture.options import MeterOptions
from flowscope.capture.source import _capture_files, meter_notes
from flowscope.diagnostics import Skips
from flowscope.schema import FLOW_SCHEMA

_INFO = b"flowscope.partial"


def capture_inputs(paths: Sequence[Path]) -> tuple[list[Path], list[str]]:
    return _capture_files(paths)


def meter_run(paths: Sequence[Path], options: MeterOptions) -> pa.Table:
    skips = Skips(unit="packets")
    meter = FlowMeter(options, skips)
    tables = [meter.add(batch) for batch in iter_packet_batches(paths, tunnels=options.tunnels, skips=skips)]
    tables.extend(meter.flush())
    table = pa.concat_tables([t for t in tables if t.num_rows] or [FLOW_SCHEMA.empty_table()])
    info = {
        "skips": dict(skips.counts),
        "examples": skips.examples,
        "counters": {"early_expired": meter.early_expired, "unmatched_fragments": meter.unmatched_fragments},
    }
    return table.replace_schema_metadata({**(table.schema.metadata or {}), _INFO: json.dumps(info).encode()})


def encode(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def decode(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(data).read_all()


def diagnostics(table: pa.Table) -> tuple[Skips, dict[str, int]]:
    info = json.loads((table.schema.metadata or {})[_INFO])
    skips = Skips(unit="packets")
    for reason, count in info["skips"].items():
        skips.add(reason, count, info["examples"].get(reason))
    return skips, info["counters"]


def notes(counters: dict[str, int], options: MeterOptions) -> list[str]:
    meter = FlowMeter(options)
    meter.early_expired = counters.get("early_expired", 0)
    meter.unmatched_fragments = counters.get("unmatched_fragments", 0)
    return meter_notes(meter)


class Stitcher:
    def __init__(self, options: MeterOptions) -> None:
        self.options = options

    def add(self, partial: pa.Table) -> Iterator[pa.Table]:
        yield partial.replace_schema_metadata({k: v for k, v in (partial.schema.metadata or {}).items() if k != _INFO})

    def finish(self) -> Iterator[pa.Table]:
        return iter(())
