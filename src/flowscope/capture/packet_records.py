"""Packet records: one row per captured IP packet (the ``packets`` lake table), as pcapstream stored them.

``flowscope read CAPTURE --records packets`` (and ``watch``/``capture --records packets``) store every
packet instead of metering flows. The rows come from the same reader and layer decoder as metering
(``iter_packet_batches`` -> ``PacketBatch``); ``packet_table`` turns a batch into an Arrow table with
column operations only (no Python step per packet), so storing packets runs in metering's speed class.

For a program (the Spark job's executors, a notebook) ``packet_tables(paths)`` is the per-file API:
Arrow tables of the ``packets`` schema, tagged for that table (``pipeline.tag``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from flowscope.capture.files import iter_packet_batches
from flowscope.capture.layers import PROTO_SCTP, PROTO_TCP, PROTO_UDP
from flowscope.capture.packets import PacketBatch
from flowscope.capture.source import capture_inputs, capture_list
from flowscope.diagnostics import Skips
from flowscope.pipeline import tag
from flowscope.readers.options import ReadOptions
from flowscope.readers.registry import Reader, register
from flowscope.schema import PACKET_SCHEMA, PACKETS

PACKETS_FORMAT = PACKETS
"""The reader's name: ``read --records packets`` forces it (a capture is metered into flows by default)."""
RECORDS = ("flows", "packets")
"""What a capture becomes: flows (metered, the default) or packet records."""


def _array(values: np.ndarray, arrow_type: pa.DataType, valid: np.ndarray | None = None) -> pa.Array:
    """A numpy column as an Arrow array of ``arrow_type`` without a copy where the types agree; ``valid``
    (bool per row) makes the other rows null."""
    mask = None if valid is None or valid.all() else ~valid
    return pa.array(np.ascontiguousarray(values), type=arrow_type, mask=mask)


def packet_table(batch: PacketBatch) -> pa.Table:
    """The ``packets`` table rows of a decoded batch (schema ``PACKET_SCHEMA``, tagged for ``packets``).

    Ports are null where the packet carries none: a protocol without ports, a later fragment (its
    transport header is in the first one) or a header cut before them. TCP flags, sequence and
    acknowledgment numbers are null unless the whole TCP header was captured (``l4_offset`` is set
    only then), so a cut header never reads as zeros.
    """
    ported = (batch.proto == PROTO_TCP) | (batch.proto == PROTO_UDP) | (batch.proto == PROTO_SCTP)
    first = batch.frag_offset == 0
    has_ports = ported & first & ((batch.l4_offset >= 0) | (batch.src_port != 0) | (batch.dst_port != 0))
    whole_tcp = (batch.proto == PROTO_TCP) & first & (batch.l4_offset >= 0)
    fields = PACKET_SCHEMA
    columns = [
        _array(batch.ts_ns, fields.field("time").type),
        _array(batch.wire_len, pa.uint32()),
        _array(batch.ip_len, pa.uint32()),
        _array(batch.ip_version, pa.uint8()),
        _addresses(batch.src_addr),
        _addresses(batch.dst_addr),
        _array(batch.proto, pa.uint8()),
        _array(batch.src_port, pa.uint16(), has_ports),
        _array(batch.dst_port, pa.uint16(), has_ports),
        _array(batch.ip_ttl, pa.uint8()),
        _array(batch.ip_tos, pa.uint8()),
        _array(batch.tcp_flags.astype(np.uint16), pa.uint16(), whole_tcp),
        _array(batch.tcp_seq, pa.uint32(), whole_tcp),
        _array(batch.tcp_ack, pa.uint32(), whole_tcp),
        _array(batch.frag_id, pa.uint32()),
        _array(batch.frag_offset, pa.uint16()),
        _array(batch.more_fragments, pa.bool_()),
        _array(batch.vlan_id, pa.uint16()),
    ]
    return tag(pa.Table.from_arrays(columns, schema=fields), PACKETS)


def _addresses(matrix: np.ndarray) -> pa.Array:
    """(n, 16) address bytes as one fixed-size binary array over the same memory."""
    flat = np.ascontiguousarray(matrix).reshape(-1)
    return pa.Array.from_buffers(pa.binary(16), matrix.shape[0], [None, pa.py_buffer(flat)])


def packet_tables(
    paths: Sequence[Path | str], *, tunnels: str = "outer", skips: Skips | None = None, mapped: bool = False
) -> Iterator[pa.Table]:
    """The packet records of capture files, in capture order, one table per decoded batch.

    The per-file API for programs (e.g. a Spark executor's ``mapInArrow``): decoding damage is counted in
    ``skips``; ``mapped`` memory-maps the files (only for files nothing is still writing).
    """
    skips = skips if skips is not None else Skips(unit="packets")
    for batch in iter_packet_batches([Path(p) for p in paths], tunnels=tunnels, skips=skips, mapped=mapped):
        if len(batch):
            yield packet_table(batch)


class PacketSource:
    """Packet records of capture files (``read --records packets``): a ``pipeline.Source``."""

    def __init__(self, paths: Sequence[Path], options: ReadOptions) -> None:
        self.files, self.ignored = capture_inputs(paths)
        self.named = {Path(path) for path in paths if not Path(path).is_dir()}
        self.tunnels = options.meter.tunnels
        self.skips = Skips(unit="packets")
        self.packets = 0
        self._sizes = [path.stat().st_size for path in self.files]
        self._done = 0

    def __iter__(self) -> Iterator[pa.Table]:
        for path, size in zip(self.files, self._sizes, strict=True):
            # memory-mapped only when named directly, as for metering (a folder may be a ring still written)
            for table in packet_tables([path], tunnels=self.tunnels, skips=self.skips, mapped=path in self.named):
                self.packets += table.num_rows
                yield table
            self._done += size

    def progress(self) -> tuple[int, int | None]:
        return self._done, sum(self._sizes)

    @property
    def notes(self) -> list[str]:
        if not self.ignored:
            return []
        return [f"{len(self.ignored)} file(s) in the given folders are not captures: {self.ignored[:3]}"]


READER = register(
    Reader(
        name=PACKETS_FORMAT,
        description="packet captures stored as one row per IP packet (read --records packets)",
        sniff=lambda _path, _head: False,  # a capture is metered by default; packet records are asked for
        open=PacketSource,
        shaping=lambda options: {"tunnels": options.meter.tunnels},
        # No state crosses files, but the reader lists folders itself (its sniffer declines every file, so
        # that a capture is metered unless packets are asked for): the files of one read are one ledger unit.
        continuous=True,
        lists=capture_list,
    )
)
