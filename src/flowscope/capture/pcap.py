"""Classic pcap (libpcap) files: micro- and nanosecond magic, either byte order, read chunk by chunk.

Record boundaries form a chain (each 16-byte header gives the length of what follows), so one tight
offset walk per chunk finds them; every header field is then gathered for all records at once.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from flowscope.capture.frames import Frames
from flowscope.diagnostics import Skips
from flowscope.errors import FlowscopeError

MAGIC_MICRO = 0xA1B2C3D4
MAGIC_NANO = 0xA1B23C4D
FILE_HEADER = 24
RECORD_HEADER = 16
MAX_RECORD = 1 << 20  # larger captured lengths than this are corruption, not packets (libpcap caps at 256 KiB)
CHUNK_BYTES = 32 << 20
MAX_WIRE_LEN = 262144  # libpcap's largest snapshot length; longer "original" frames are corruption


@dataclass(frozen=True)
class PcapHeader:
    byteorder: str  # "<" or ">"
    nanosecond: bool
    snaplen: int
    linktype: int


def sniff(head: bytes) -> bool:
    return len(head) >= 4 and struct.unpack("<I", head[:4])[0] in (
        MAGIC_MICRO,
        MAGIC_NANO,
        _swap(MAGIC_MICRO),
        _swap(MAGIC_NANO),
    )


def _swap(value: int) -> int:
    return struct.unpack("<I", struct.pack(">I", value))[0]


def parse_header(head: bytes, name: str) -> PcapHeader:
    if len(head) < FILE_HEADER:
        raise FlowscopeError(f"{name}: pcap file header cut short ({len(head)} of {FILE_HEADER} bytes)")
    for order in "<>":
        magic = struct.unpack(order + "I", head[:4])[0]
        if magic in (MAGIC_MICRO, MAGIC_NANO):
            _, _, _, _, snaplen, network = struct.unpack(order + "HHiIII", head[4:24])
            return PcapHeader(order, magic == MAGIC_NANO, snaplen, network & 0x0FFFFFFF)
    raise FlowscopeError(f"{name}: not a pcap file (magic {head[:4].hex()})")


def _walk(buf: bytes, start: int, order: str, limit: int) -> tuple[list[int], int, bool]:
    """Record-header offsets from ``start`` while whole records fit; (offsets, next offset, hit garbage)."""
    caplen_at = struct.Struct(order + "I").unpack_from
    offsets: list[int] = []
    append = offsets.append
    last = len(buf) - RECORD_HEADER
    pos = start
    while pos <= last and len(offsets) < limit:
        caplen = caplen_at(buf, pos + 8)[0]
        if caplen > MAX_RECORD:
            return offsets, pos, True
        if pos + RECORD_HEADER + caplen > len(buf):
            break
        append(pos)
        pos += RECORD_HEADER + caplen
    return offsets, pos, False


def read_frames(stream: BinaryIO, name: str, skips: Skips, batch_packets: int) -> Iterator[Frames]:
    """Frames of one pcap stream in batches of at most ``batch_packets``; damage is counted, not raised."""
    header = parse_header(stream.read(FILE_HEADER), name)
    dtype = np.dtype(header.byteorder + "u4")
    scale = 1 if header.nanosecond else 1000
    fraction_limit = 1_000_000_000 // scale
    pending = b""
    while True:
        chunk = stream.read(CHUNK_BYTES)
        buf = pending + chunk if pending else chunk
        at_eof = not chunk
        pos = 0
        while True:
            offsets, pos, garbage = _walk(buf, pos, header.byteorder, batch_packets)
            if offsets:
                yield _frames(buf, np.asarray(offsets, np.int64), dtype, scale, fraction_limit, header, skips)
            if garbage:
                skips.add(
                    "pcap record with impossible length: rest of file unreadable",
                    1,
                    f"{name} at byte {FILE_HEADER + pos}",
                )
                return
            if len(offsets) < batch_packets:
                break
        pending = buf[pos:]
        if at_eof:
            if pending:
                skips.add("truncated last record", 1, f"{name}: {len(pending)} trailing bytes")
            return


def _frames(
    buf: bytes, offsets: np.ndarray, dtype: np.dtype, scale: int, fraction_limit: int, header: PcapHeader, skips: Skips
) -> Frames:
    data = np.frombuffer(buf, np.uint8)
    fields = data[offsets[:, None] + np.arange(RECORD_HEADER)].view(dtype).astype(np.int64)
    seconds, fraction, caplen, wirelen = fields[:, 0], fields[:, 1], fields[:, 2], fields[:, 3]
    bogus = fraction >= fraction_limit
    if bogus.any():
        skips.add("timestamp fraction out of range (packet kept, fraction clamped)", int(bogus.sum()))
        fraction = np.minimum(fraction, fraction_limit - 1)
    short = wirelen < caplen
    if short.any():
        skips.add("original length below captured length (packet kept, length raised)", int(short.sum()))
    huge = wirelen > MAX_WIRE_LEN
    if huge.any():
        skips.add("original length beyond 256 KiB (packet kept, length set to captured)", int(huge.sum()))
    wirelen = np.where(short | huge, caplen, wirelen)
    return Frames(
        data=data,
        offsets=offsets + RECORD_HEADER,
        caplens=caplen,
        wirelens=wirelen,
        linktypes=np.int64(header.linktype),
        ts_ns=seconds * 1_000_000_000 + fraction * scale,
    )
