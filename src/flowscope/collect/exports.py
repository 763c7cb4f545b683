"""``flowscope read CAPTURE --as-exports``: flow exports recorded in a pcap, through the collector's decoders.

Every UDP payload of the capture is one export datagram; its source address is the
exporter and its capture time the receive time, exactly as the live collector would
have seen it. NetFlow/IPFIX and sFlow are told apart by their version field; datagrams
that are neither are counted by reason, not lost. Flows are yielded as flow batches,
sFlow counter samples as batches tagged for the ``interface_counters`` table (the
collector's columns). Per-exporter health (datagrams, flows, sequence loss, decode
errors) is accounted as the collector does, and ``save_health`` leaves it, with the
templates learnt, in the lake for ``flowscope exporters`` and ``flowscope templates``.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from flowscope.capture.files import iter_packet_batches
from flowscope.capture.packets import PacketBatch
from flowscope.capture.source import capture_inputs, capture_list, ignored_note
from flowscope.collect.datagrams import Datagrams
from flowscope.collect.dispatch import decode_netflow
from flowscope.collect.health import Health, save_health
from flowscope.collect.options import EXPORTS_FORMAT
from flowscope.collect.sampling import SamplingConfig
from flowscope.collect.sflow import decode_sflow
from flowscope.collect.state import NetflowState
from flowscope.diagnostics import Skips
from flowscope.pipeline import tag
from flowscope.readers.options import ReadOptions
from flowscope.readers.registry import Reader, register
from flowscope.schema import INTERFACE_COUNTERS

UDP = 17
SFLOW_V5 = b"\x00\x00\x00\x05"  # sFlow's 32-bit version; NetFlow's is 16-bit, so v5 starts 00 05
BATCH_PACKETS = 1 << 16


def datagrams_of(batch: PacketBatch, skips: Skips) -> Datagrams:
    """The UDP payloads of a packet batch, one slice per packet; the rest is counted in ``skips``."""
    udp = (batch.proto == UDP) & (batch.l4_offset >= 0)
    fragmented = udp & (batch.more_fragments | (batch.frag_offset > 0))
    skips.add("UDP datagrams fragmented over several IP packets (not reassembled)", int(fragmented.sum()))
    skips.add("packets that are not UDP datagrams", int((~udp).sum()))
    whole = udp & ~fragmented
    skips.add("empty UDP datagrams", int((whole & (batch.l4_len <= 0)).sum()))
    rows = np.flatnonzero(whole & (batch.l4_len > 0))
    data = batch.data
    starts = batch.l4_offset[rows].tolist()
    ends = (batch.l4_offset[rows] + batch.l4_len[rows]).tolist()
    payloads = [data[s:e].tobytes() for s, e in zip(starts, ends, strict=True)]
    return Datagrams(payloads, batch.src_addr[rows], batch.ts_ns[rows])


def iter_export_datagrams(paths: Sequence[Path], skips: Skips) -> Iterator[Datagrams]:
    """Export datagrams of captures, in capture order, one batch per packet batch."""
    for batch in iter_packet_batches(paths, batch_packets=BATCH_PACKETS, skips=skips):
        datagrams = datagrams_of(batch, skips)
        if len(datagrams):
            yield datagrams


class ExportCaptureSource:
    """Flows (and tagged counter batches) decoded from the export datagrams of captures (templates learnt
    along the way)."""

    def __init__(self, paths: Sequence[Path], state: NetflowState | None = None) -> None:
        self.files, self.ignored = capture_inputs(paths)
        self.state = state or NetflowState()
        self.skips = Skips(unit="items")
        self.health = Health()
        """What the collector would have reported for these exports (``save_health`` puts it in a lake)."""
        self._total = sum(p.stat().st_size for p in self.files)
        self._done = 0

    def progress(self) -> tuple[int, int | None]:
        return self._done, self._total

    @property
    def notes(self) -> list[str]:
        return ignored_note(self.ignored)

    def __iter__(self) -> Iterator[pa.Table]:
        for index, path in enumerate(self.files):
            for datagrams in iter_export_datagrams([path], self.skips):
                is_sflow = np.array([p[:4] == SFLOW_V5 for p in datagrams.payloads], bool)
                parts = [("netflow", decode_netflow(datagrams.take(np.flatnonzero(~is_sflow)), self.state))]
                if is_sflow.any():
                    parts.append(("sflow", decode_sflow(datagrams.take(np.flatnonzero(is_sflow)))))
                for protocol, decoded in parts:
                    self.skips.merge(decoded.skips)
                    self.health.observe(protocol, decoded)
                    if decoded.flows.num_rows:
                        self.health.rows_written["flows"] += decoded.flows.num_rows
                        yield decoded.flows
                    if decoded.counters is not None and decoded.counters.num_rows:
                        self.health.rows_written[INTERFACE_COUNTERS] += decoded.counters.num_rows
                        yield tag(decoded.counters, INTERFACE_COUNTERS)
            self._done = sum(p.stat().st_size for p in self.files[: index + 1])
        self.skips.add("data sets whose template never came", self.state.templates.held_sets)

    def save_health(self, lake_root: str | Path) -> Path:
        """After reading into the lake at ``lake_root``: leave the exporters' health and the templates and
        sampling rates learnt there, as a collector run would (``flowscope exporters`` shows the latest run,
        so this read until a collector or another read starts). Returns the health snapshot's path."""
        run_id = f"read-{socket.gethostname()}-{os.getpid()}-{self.health.started_ns}"
        return save_health(lake_root, self.health, f"{socket.gethostname()}-read", run_id=run_id, state=self.state)


def open_source(paths: Sequence[Path], options: ReadOptions) -> ExportCaptureSource:
    state = NetflowState.open(None, SamplingConfig.load(options.exports.sampling_config))
    state.tunnels = options.exports.tunnels
    return ExportCaptureSource(paths, state)


READER = register(
    Reader(
        name=EXPORTS_FORMAT,
        description="NetFlow v1/v5/v9/IPFIX and sFlow v5 datagrams recorded in captures (read --as-exports)",
        sniff=lambda _path, _head: False,  # a capture is metered by default; exports are asked for explicitly
        open=open_source,
        shaping=lambda options: options.exports.shaping(),
        continuous=True,
        lists=capture_list,
    )
)
