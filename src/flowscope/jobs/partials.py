"""Interim stand-in for ``jobs.stitch``: executors decode a run's packets, the driver meters them in order.

Exact (one meter sees every packet in rotation order) but only decoding runs in parallel; replaced by
``jobs.stitch`` (runs metered on the executors, partial results stitched) once it lands.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from flowscope.capture.files import iter_packet_batches
from flowscope.capture.meter import FlowMeter
from flowscope.capture.options import MeterOptions
from flowscope.capture.packets import COLUMNS, PacketBatch
from flowscope.capture.source import _capture_files, meter_notes
from flowscope.diagnostics import Skips

_METERED = tuple(name for name, _, _ in COLUMNS if name not in ("l4_offset", "l4_len"))


def capture_inputs(paths: Sequence[Path]) -> tuple[list[Path], list[str]]:
    """The capture files ``flowscope read`` would meter for ``paths``, in rotation order, and the others."""
    return _capture_files(paths)


def meter_run(paths: Sequence[Path], options: MeterOptions) -> bytes:
    """On an executor: the run's decoded packets (and skips), encoded."""
    skips = Skips(unit="packets")
    arrays = {}
    batches = 0
    for batches, packets in enumerate(iter_packet_batches(paths, tunnels=options.tunnels, skips=skips), 1):
        # batch by batch, as ``read`` meters them: where capture time goes back between files, the flows
        # timed out depend on which packets one ``FlowMeter.add`` sees
        arrays.update({f"{batches}.{name}": getattr(packets, name) for name in _METERED})
    info = json.dumps({"skips": dict(skips.counts), "examples": skips.examples, "batches": batches})
    buffer = io.BytesIO()
    np.savez(buffer, info=np.array(info), **arrays)
    return buffer.getvalue()


class Stitcher:
    """On the driver: partial results in run order -> the flows one meter makes; ``carry`` is its state."""

    def __init__(self, options: MeterOptions, carried: bytes | None = None) -> None:
        self.skips = Skips(unit="packets")
        self.meter = FlowMeter(options, self.skips)
        if carried:
            with np.load(io.BytesIO(carried)) as arrays:
                self.meter.restore(dict(arrays))

    def add(self, partial: bytes) -> Iterator[pa.Table]:
        with np.load(io.BytesIO(partial)) as arrays:
            info = json.loads(str(arrays["info"]))
            for reason, count in info["skips"].items():
                self.skips.add(reason, count, info["examples"].get(reason))
            for batch in range(1, info["batches"] + 1):
                packets = PacketBatch.empty(len(arrays[f"{batch}.ts_ns"]))
                for name in _METERED:
                    setattr(packets, name, arrays[f"{batch}.{name}"])
                yield self.meter.add(packets)

    def finish(self) -> Iterator[pa.Table]:
        """Every flow still open (the end of the input)."""
        return self.meter.flush()

    def carry(self) -> bytes:
        """The open flows and the clock, for a later ``Stitcher(options, carried)`` to continue from."""
        buffer = io.BytesIO()
        np.savez(buffer, allow_pickle=True, **self.meter.state())
        return buffer.getvalue()

    def notes(self) -> list[str]:
        return meter_notes(self.meter)
