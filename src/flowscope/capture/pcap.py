"""Classic pcap (libpcap) files: micro- and nanosecond magic, either byte order, read chunk by chunk.

Record boundaries form a chain (each 16-byte header gives the length of what follows), so one compiled
walk per chunk finds them (``_walk``); every header field is then gathered for all records at once.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

import numba
import numpy as np

from flowscope.capture import chain
from flowscope.capture.chunks import BROKEN_STREAM, Chunks
from flowscope.capture.frames import Frames
from flowscope.capture.layers import COMMON_WIDTH
from flowscope.diagnostics import Skips
from flowscope.errors import FlowscopeError

MAGIC_MICRO = 0xA1B2C3D4
MAGIC_NANO = 0xA1B23C4D
FILE_HEADER = 24
RECORD_HEADER = 16
MAX_RECORD = 1 << 20  # larger captured lengths than this are corruption, not packets (libpcap caps at 256 KiB)
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


HEAD_WIDTH = RECORD_HEADER + COMMON_WIDTH  # what the walk copies per record (see ``Frames.heads``)


@numba.njit(cache=True, nogil=True)
def _walk(buf: np.ndarray, start: int, big: bool) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Offsets of the whole records from ``start``, their heads, where the walk stopped and why (``chain``).

    One compiled loop: read the captured length, step over the record, keep reading ahead (``chain.touch``).
    Then each record's header and its frame's first bytes are copied (``Frames.heads``; bytes past the buffer
    are 0), into an array of exactly the records found.
    """
    size = buf.shape[0]
    offsets = np.empty(max(size - start, 0) // RECORD_HEADER + 2, np.int64)  # the last slot: ``seen``
    count, pos, status = 0, start, chain.REACHED_END
    touched, seen = start, 0
    while pos + RECORD_HEADER <= size:
        touched, seen = chain.touch(buf, touched, pos, seen)
        caplen = chain.u32(buf, pos + 8, big)
        if caplen > MAX_RECORD:
            status = chain.CORRUPT
            break
        following = pos + RECORD_HEADER + caplen
        if following > size:
            break
        offsets[count] = pos
        count += 1
        pos = following
    offsets[-1] = seen
    if status != chain.CORRUPT and pos != size:
        status = chain.INCOMPLETE
    heads = np.zeros((count, HEAD_WIDTH), np.uint8)
    for row in range(count):
        at = offsets[row]
        take = min(HEAD_WIDTH, size - at)
        heads[row, :take] = buf[at : at + take]
    return offsets[:count], heads, pos, status


def walk(buf: np.ndarray, start: int, header: PcapHeader) -> chain.Chain:
    """Every whole record of ``buf`` from ``start``, with its head (``Chain.heads``)."""
    offsets, heads, end, status = _walk(buf, start, header.byteorder == ">")
    return chain.Chain(offsets, int(end), status == chain.CORRUPT, heads)


def read_frames(chunks: Chunks, name: str, skips: Skips, batch_packets: int) -> Iterator[Frames]:
    """Frames of one pcap file in batches of at most ``batch_packets``; damage is counted, not raised."""
    buf = chunks.buffer
    header = parse_header(buf[:FILE_HEADER].tobytes(), name)
    start = FILE_HEADER
    while True:
        found = walk(buf, start, header)
        mean_record = found.mean_record(start)
        for first in range(0, found.offsets.shape[0], batch_packets):
            part = slice(first, first + batch_packets)
            yield _frames(buf, found.offsets[part], found.heads[part], header, skips)
        if found.corrupt:
            where = f"{name} at byte {chunks.start + found.end}"
            skips.add("pcap record with impossible length: rest of file unreadable", 1, where)
            return
        if chunks.at_eof:
            if chunks.broken:
                skips.add(BROKEN_STREAM, 1, f"{name}: {chunks.broken}")
            elif found.end < buf.shape[0]:
                skips.add("truncated last record", 1, f"{name}: {buf.shape[0] - found.end} trailing bytes")
            return
        buf = chunks.next(found.end, int(batch_packets * mean_record * 0.95))  # about one batch per chunk
        start = 0


def _frames(buf: np.ndarray, offsets: np.ndarray, heads: np.ndarray, header: PcapHeader, skips: Skips) -> Frames:
    fraction_limit = 1_000_000_000 if header.nanosecond else 1_000_000
    scale = 1 if header.nanosecond else 1000
    fields = np.ndarray((offsets.shape[0], 4), header.byteorder + "u4", heads, 0, (HEAD_WIDTH, 4)).astype(np.int64)
    seconds, fraction, caplen, wirelen = fields.T
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
    return Frames(
        data=buf,
        offsets=offsets + RECORD_HEADER,
        caplens=caplen,
        wirelens=np.where(short | huge, caplen, wirelen),
        linktypes=np.int64(header.linktype),
        ts_ns=seconds * 1_000_000_000 + fraction * scale,
        heads=heads,
    )
