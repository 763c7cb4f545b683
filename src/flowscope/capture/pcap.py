"""Classic pcap (libpcap) files: micro- and nanosecond magic, either byte order, read chunk by chunk.

Record boundaries form a chain (each 16-byte header gives the length of what follows), so one tight
offset walk per chunk finds them; every header field is then gathered for all records at once.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flowscope.capture import chain
from flowscope.capture.chunks import Chunks
from flowscope.capture.frames import Frames
from flowscope.capture.layers import COMMON_WIDTH, ByteView
from flowscope.diagnostics import BROKEN_STREAM, Skips
from flowscope.errors import FlowscopeError

MAGIC_MICRO = 0xA1B2C3D4
MAGIC_NANO = 0xA1B23C4D
FILE_HEADER = 24
RECORD_HEADER = 16
MAX_RECORD = 1 << 20  # larger captured lengths than this are corruption, not packets (libpcap caps at 256 KiB)
TIME_SPREAD = 366 * 86400  # record-start guesses must lie within a year of the latest record seen
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


@dataclass
class Span:
    """The records of one classic pcap file that start in ``[start, stop)`` (file offsets; ``stop`` None: to the
    end): one run's share when a single file is metered in several (``jobs/split.py``). ``start`` is the file
    header's end or a guessed record start; the reader sets ``end`` and ``landed`` as it goes."""

    path: Path
    start: int
    stop: int | None = None
    end: int = 0
    """File offset after the last record read; once read whole, where the walk ended: the first record start
    at or past ``stop`` when ``landed``, else the file's end, its truncated last record or a corrupt one."""
    landed: bool = False
    """The walk reached a record starting at or past ``stop`` (it was not stopped by the file's end or damage)."""


class _Records:
    """Record-header arithmetic for one pcap buffer, as the chain walker needs it."""

    def __init__(self, buf: np.ndarray, header: PcapHeader, recent_second: int | None) -> None:
        self.words = np.ndarray((max(buf.shape[0] - 3, 0),), header.byteorder + "u4", buf, strides=(1,))
        # Opaque 16-byte items at every offset: gathering them is a plain copy (much faster than gathering
        # unaligned integers), read afterwards in the file's byte order.
        self.items16 = np.ndarray((max(buf.shape[0] - 15, 0),), "V16", buf, strides=(1,))
        # The captured length of a record at each offset: for the walk's few hundred positions per step a
        # direct unaligned gather is cheaper than copy-and-view.
        self.caplens = self.words[8:]
        self.u4 = header.byteorder + "u4"
        self.fraction_limit = 1_000_000_000 if header.nanosecond else 1_000_000
        self.recent_second = recent_second

    def fields(self, pos: np.ndarray) -> np.ndarray:
        """(n, 4) int64: seconds, fraction, captured length, original length of the records at ``pos``."""
        return self.items16[pos].view(self.u4).reshape(-1, 4).astype(np.int64)

    def lengths(self, pos: np.ndarray) -> np.ndarray:
        length = self.caplens[pos].astype(np.int64)  # the chain walk's inner step: as few numpy calls as can be
        length += RECORD_HEADER
        length[length > RECORD_HEADER + MAX_RECORD] = -1
        return length

    def candidates(self, first: int, step: int, count: int, window: int) -> np.ndarray:
        """Positions in the search windows that look like record headers (see ``chain.Candidates``).

        A cheap test on the whole windows first (seconds within a year of the latest record seen,
        read through a strided view, no copies), then the full test on the few survivors.
        """
        last = self.words.shape[0] - 13  # the last position with a whole 16-byte header
        count = min(count, (last - window - first) // step + 1)
        if count <= 0 or self.recent_second is None:
            return np.zeros(0, np.int64)
        seconds = np.lib.stride_tricks.as_strided(self.words[first:], (count, window), (step, 1), writeable=False)
        low = np.uint32((self.recent_second - TIME_SPREAD) % 2**32)
        pos = chain.window_positions((seconds - low) < np.uint32(2 * TIME_SPREAD), first, step)
        return pos[self._plausible(pos)]

    def _plausible(self, pos: np.ndarray, records: int = 2) -> np.ndarray:
        """Sane fraction and lengths at ``pos`` and at the ``records - 1`` records its chain leads to (those in
        the buffer)."""
        last = self.words.shape[0] - 13
        ok = np.ones(pos.shape[0], bool)
        for _ in range(records):
            inside = pos <= last
            at = np.where(inside, pos, 0)
            seconds, fraction, caplen, wire = self.fields(at).T
            near = np.abs(seconds - self.recent_second) < TIME_SPREAD
            sane = near & (fraction < self.fraction_limit) & (caplen <= MAX_RECORD)
            sane &= (wire >= caplen) & (wire <= MAX_WIRE_LEN)
            ok &= sane | ~inside
            pos = at + RECORD_HEADER + caplen
        return ok


def mean_record(buf: np.ndarray, header: PcapHeader) -> float:
    """Mean record length over the whole records in ``buf``, a pcap file's first bytes (header included)."""
    if buf.shape[0] < FILE_HEADER + RECORD_HEADER:
        return chain.DEFAULT_MEAN_RECORD
    first_second = int(np.frombuffer(buf[FILE_HEADER : FILE_HEADER + 4].tobytes(), header.byteorder + "u4")[0])
    records = _Records(buf, header, first_second)
    found = chain.walk(buf.shape[0], RECORD_HEADER, records.lengths, records.candidates, FILE_HEADER)
    return found.mean_record(FILE_HEADER)


def guess_record_start(buf: np.ndarray, header: PcapHeader, recent_second: int, records: int = 8) -> int | None:
    """The first position of ``buf`` (bytes of a pcap file from some offset on) where a chain of ``records``
    plausible record headers starts (as far as ``buf`` holds them), or None. Only a guess: payloads may hold
    record-like bytes, so a caller must verify it by walking the true chain onto it."""
    found = _Records(buf, header, recent_second)
    window = found.words.shape[0] - 13
    if window <= 0:
        return None
    candidates = found.candidates(0, window, 1, window)
    chained = candidates[found._plausible(candidates, records)]
    return int(chained[0]) if chained.size else None


def read_frames(
    chunks: Chunks, name: str, skips: Skips, batch_packets: int, span: Span | None = None
) -> Iterator[Frames]:
    """Frames of one pcap file in batches of at most ``batch_packets``; damage is counted, not raised.
    With ``span``, only the records of its range, the walk starting at ``span.start`` (see ``Span``)."""
    buf = chunks.buffer
    header = parse_header(buf[:FILE_HEADER].tobytes(), name)
    scale = 1 if header.nanosecond else 1000
    recent_second = None  # the time lane-start guesses must be near: the latest record's, as the file goes on
    start = FILE_HEADER
    mean_record: float = chain.DEFAULT_MEAN_RECORD
    if span is not None and span.start != FILE_HEADER:
        buf, start = chunks.next(span.start, int(batch_packets * mean_record)), 0
    while True:
        if recent_second is None and buf.shape[0] >= start + RECORD_HEADER:
            recent_second = int(np.frombuffer(buf[start : start + 4].tobytes(), header.byteorder + "u4")[0])
        records = _Records(buf, header, recent_second)
        found = chain.walk(buf.shape[0], RECORD_HEADER, records.lengths, records.candidates, start, mean_record)
        mean_record = found.mean_record(start)
        offsets, passed = found.offsets, False
        stop = None if span is None or span.stop is None else span.stop - chunks.start
        if stop is not None:  # the records starting before the stop are the span's; the next one is its landing
            mine = int(np.searchsorted(offsets, stop))
            passed = mine < offsets.shape[0] or found.end >= stop
            offsets = offsets[:mine]
        if offsets.shape[0]:
            recent_second = int(records.fields(offsets[-1:])[0, 0])
        for first in range(0, offsets.shape[0], batch_packets):
            part = offsets[first : first + batch_packets]
            frames = _frames(buf, records, part, scale, header, skips)
            if span is not None:
                span.end = chunks.start + int(part[-1]) + RECORD_HEADER + int(frames.caplens[-1])
            yield frames
        if span is not None:
            landed = found.offsets[offsets.shape[0]] if offsets.shape[0] < found.offsets.shape[0] else found.end
            span.end, span.landed = chunks.start + int(landed), passed
            if passed:
                return
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
        wanted = int(batch_packets * mean_record * 0.95)  # about one batch per chunk
        if stop is not None:  # and not far past the span's stop (the walk beyond it only finds the landing)
            wanted = min(wanted, stop - found.end + MAX_RECORD)
        buf = chunks.next(found.end, wanted)
        start = 0


def _frames(
    buf: np.ndarray, records: _Records, offsets: np.ndarray, scale: int, header: PcapHeader, skips: Skips
) -> Frames:
    fraction_limit = records.fraction_limit
    # Each record's header and its frame's first bytes in one gather: the decoder reads the frame from here.
    width = RECORD_HEADER + COMMON_WIDTH
    heads = ByteView(buf).header(offsets, width, None)
    fields = np.ndarray((offsets.shape[0], 4), records.u4, heads, 0, (width, 4)).astype(np.int64)
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
