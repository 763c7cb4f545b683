"""pcapng files: sections of either byte order, interfaces with their own link type and timestamp resolution.

Blocks are found with the vectorised chain walk (each block header gives its length; the copy of
the length in the block trailer confirms it and tells the byte order). Section and interface
blocks are few and are read one by one to build the interface tables; the fields of all packet
blocks (EPB, SPB, obsolete Packet Block) are then gathered at once. Interface Statistics Blocks
(few, usually at the end) are read one by one into an ``InterfaceStatistics`` when the caller asks for
them (the capturer's drop counters: ``capture.drops``). Name resolution, custom and unknown blocks
carry no packets and are passed over, as the format asks of readers.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from flowscope.capture import chain
from flowscope.capture.chunks import Chunks
from flowscope.capture.frames import Frames
from flowscope.diagnostics import BROKEN_STREAM, Skips
from flowscope.errors import FlowscopeError

SHB = 0x0A0D0D0A
IDB = 0x00000001
ISB = 0x00000005
OPB = 0x00000002  # obsolete Packet Block
SPB = 0x00000003
EPB = 0x00000006
BYTE_ORDER_MAGIC = 0x1A2B3C4D
OPT_END = 0
IF_NAME = 2
IF_TSRESOL = 9
# Interface Statistics Block options (64-bit counters: isb_ifrecv, isb_ifdrop, isb_osdrop, isb_usrdeliv)
# -> ``drops.CaptureDrops`` fields
ISB_COUNTERS = {4: "received", 5: "interface_drops", 7: "kernel_drops", 8: "captured"}
IF_TSOFFSET = 14
BLOCK_HEADER = 12
MAX_BLOCK = 16 << 20
MAX_SECONDS = (2**63 - 1) // 1_000_000_000 - 1  # nanoseconds since 1970 must fit in int64


def sniff(head: bytes) -> bool:
    return (
        len(head) >= 12 and head[:4] == b"\x0a\x0d\x0d\x0a" and head[8:12] in (b"\x1a\x2b\x3c\x4d", b"\x4d\x3c\x2b\x1a")
    )


@dataclass
class Interface:
    linktype: int
    snaplen: int
    tsresol: int = 6  # if_tsresol: high bit clear = 10^-n, set = 2^-n seconds
    tsoffset: int = 0  # if_tsoffset: seconds added to every timestamp
    name: str | None = None  # if_name


@dataclass
class Section:
    big_endian: bool
    first_interface: int  # index of its first interface in the reader's interface list
    interface_positions: list[int] = field(default_factory=list)  # stream offsets of its IDBs


class InterfaceStatistics:
    """The latest Interface Statistics Block counters of each interface of one file (``ISB_COUNTERS``' names),
    keyed by the interface's name (``if_name``), else ``#INDEX`` (its position among the file's interfaces)."""

    def __init__(self) -> None:
        self.latest: dict[str, dict[str, int]] = {}

    def record(self, interface: str, options: dict[int, bytes], order: str) -> None:
        counters = {
            name: struct.unpack(order + "Q", options[code])[0]
            for code, name in ISB_COUNTERS.items()
            if len(options.get(code, b"")) == 8
        }
        if counters:
            self.latest[interface] = {**self.latest.get(interface, {}), **counters}


def _options(body: bytes, start: int, order: str) -> dict[int, bytes]:
    """Options of a block as code -> first value (options are few per block, so this loop is per block)."""
    found: dict[int, bytes] = {}
    head = struct.Struct(order + "HH")
    pos = start
    while pos + 4 <= len(body):
        code, length = head.unpack_from(body, pos)
        if code == OPT_END:
            break
        found.setdefault(code, body[pos + 4 : pos + 4 + length])
        pos += 4 + length + (-length % 4)
    return found


def _interface(body: bytes, order: str) -> Interface:
    linktype, _, snaplen = struct.unpack_from(order + "HHI", body, 8)
    options = _options(body, 16, order)
    interface = Interface(linktype, snaplen)
    if options.get(IF_TSRESOL):
        interface.tsresol = options[IF_TSRESOL][0]
    if options.get(IF_NAME):
        interface.name = options[IF_NAME].decode(errors="replace").rstrip("\0")
    if IF_TSOFFSET in options and len(options[IF_TSOFFSET]) == 8:
        interface.tsoffset = struct.unpack(order + "q", options[IF_TSOFFSET])[0]
    return interface


class _Blocks:
    """Block-header arithmetic on one buffer, in whichever byte order each block's trailer confirms."""

    def __init__(self, buf: np.ndarray, big_endian: bool = False) -> None:
        self.big_endian = big_endian  # the byte order in effect at the buffer start (for lane guesses)
        self.buf = buf
        self.size = buf.shape[0]
        # Opaque 4-byte items at every offset: gathering them is a plain copy, far cheaper than gathering
        # unaligned integers; the copies are then read in either byte order.
        self.items = np.ndarray((max(self.size - 3, 0),), "V4", buf, strides=(1,))
        self.pairs = np.ndarray((max(self.size - 7, 0),), "V8", buf, strides=(1,))
        self.by_count: dict[int, np.ndarray] = {}

    def _word(self, pos: np.ndarray, big: np.ndarray | bool) -> np.ndarray:
        raw = self.items[np.minimum(pos, self.items.shape[0] - 1)]
        little = raw.view("<u4").astype(np.int64)
        if isinstance(big, bool):
            return raw.view(">u4").astype(np.int64) if big else little
        return np.where(big, raw.view(">u4"), little) if big.any() else little

    def _checked_length(self, pos: np.ndarray, big: bool) -> np.ndarray:
        """Total length of non-section blocks of byte order ``big`` at ``pos``, -1 where that does not fit."""
        kind = self._word(pos, big)
        length = self._word(pos + 4, big)
        sane = (length >= BLOCK_HEADER) & (length % 4 == 0) & (length <= MAX_BLOCK)
        sane &= ((kind < 0x10000) | (kind >= 0x80000000) | (kind == 0x40000BAD)) & (kind != SHB)
        inside = pos + length <= self.size
        trailer = self._word(np.where(sane & inside, pos + length - 4, 0), big)
        return np.where(sane & (~inside | (trailer == length)), length, -1)

    def describe(self, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(type, total length or -1 when impossible, big-endian?) of the blocks at ``pos``.

        Blocks of the byte order in effect are confirmed with two reads (type and length, trailer); only
        section headers and blocks that fail that go through the test of both byte orders.
        """
        length = self._checked_length(pos, self.big_endian)
        kind = self._word(pos, self.big_endian)
        big = np.full(pos.shape[0], self.big_endian)
        odd = length < 0
        if odd.any():
            kind[odd], length[odd], big[odd] = self._describe_fully(pos[odd])
        return kind, length, big

    def _describe_fully(self, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        at = np.minimum(pos + 8, self.items.shape[0] - 1)
        section = self._word(pos, False) == SHB
        magic_big = self._word(at, True) == BYTE_ORDER_MAGIC
        magic_known = magic_big | (self._word(at, False) == BYTE_ORDER_MAGIC)
        little_length = self._checked_length(pos, False)
        big_length = self._checked_length(pos, True)
        big = np.where(section, magic_big, (little_length < 0) & (big_length >= 0))
        length = np.where(big, big_length, little_length)
        shb_length = self._word(pos + 4, big)
        shb_ok = (shb_length >= 28) & (shb_length % 4 == 0) & (shb_length <= MAX_BLOCK) & magic_known
        length = np.where(section, np.where(shb_ok, shb_length, -1), length)
        return self._word(pos, big), length, big

    def words(self, pos: np.ndarray, count: int, big: np.ndarray) -> np.ndarray:
        """(n, count) int64: ``count`` consecutive 32-bit words at ``pos``, each row in its own byte order."""
        items = self.by_count.get(count)
        if items is None:
            size = max(self.size - 4 * count + 1, 0)
            items = self.by_count[count] = np.ndarray((size,), f"V{4 * count}", self.buf, strides=(1,))
        raw = items[np.minimum(pos, items.shape[0] - 1)]
        little = raw.view("<u4").reshape(-1, count).astype(np.int64)
        if not big.any():
            return little
        return np.where(big[:, None], raw.view(">u4").reshape(-1, count), little)

    def lengths(self, pos: np.ndarray) -> np.ndarray:
        """Block lengths for the chain walk: type and length read in the byte order in effect, in one copy;
        section headers and anything odd get the full test. Trailers are checked after the walk (``walk``)."""
        pair = self.pairs[np.minimum(pos, self.pairs.shape[0] - 1)].view(">u4" if self.big_endian else "<u4")
        pair = pair.reshape(-1, 2).astype(np.int64)
        kind, length = pair[:, 0], pair[:, 1]
        plain = (length >= BLOCK_HEADER) & (length % 4 == 0) & (length <= MAX_BLOCK)
        plain &= ((kind < 0x10000) | (kind >= 0x80000000) | (kind == 0x40000BAD)) & (kind != SHB)
        length = np.where(plain, length, -1)
        if not plain.all():
            length[~plain] = self.full_lengths(pos[~plain])
        return length

    def full_lengths(self, pos: np.ndarray) -> np.ndarray:
        return self.describe(pos)[1]

    def walk(self, mean_record: float) -> tuple[chain.Chain, np.ndarray, np.ndarray, np.ndarray]:
        """All whole blocks of the buffer with their (type, length, big-endian?).

        The fast walk trusts lengths read in the byte order in effect; every block found is then checked
        in full (trailer included). Where a check fails (a byte-order switch whose lengths happened to look
        sane, or damage), the chain is walked again from there with the full test at every step.
        """
        found = chain.walk(self.size, BLOCK_HEADER, self.lengths, self.candidates, 0, mean_record)
        kinds, lengths, big = self.describe(found.offsets)
        following = np.append(found.offsets[1:], found.end)
        wrong = np.flatnonzero(found.offsets + lengths != following)
        if wrong.shape[0]:
            first = int(wrong[0])
            again = chain.walk(self.size, BLOCK_HEADER, self.full_lengths, self.candidates, int(found.offsets[first]))
            found = chain.Chain(np.concatenate([found.offsets[:first], again.offsets]), again.end, again.corrupt)
            kinds, lengths, big = self.describe(found.offsets)
        return found, kinds, lengths, big

    def candidates(self, first: int, step: int, count: int, window: int) -> np.ndarray:
        """Positions in the search windows that hold a packet or section block (see ``chain.Candidates``)."""
        last = self.items.shape[0] - 9
        count = min(count, (last - window - first) // step + 1)
        if count <= 0:
            return np.zeros(0, np.int64)
        # A cheap byte test on the whole windows first (block types are small numbers: their low byte
        # comes first in little-endian, last in big-endian), the full test on the survivors.
        start = first + (3 if self.big_endian else 0)
        low_byte = np.lib.stride_tricks.as_strided(self.buf[start:], (count, window), (step, 1), writeable=False)
        pos = chain.window_positions((low_byte == EPB) | (low_byte == SPB) | (low_byte == 0x0A), first, step)
        typed = np.isin(self._word(pos, self.big_endian), (EPB, SPB, SHB))
        pos = pos[typed]
        kind, length, big = self.describe(pos)
        # A block of one byte order also reads as one of the other order three bytes earlier (the high
        # bytes of the previous trailer are zero); only the order in effect is a good guess.
        length = np.where((big == self.big_endian) | (kind == SHB), length, -1)
        following = pos + np.maximum(length, 0)
        ok = length > 0
        check = ok & (following + BLOCK_HEADER <= self.size)
        ok[check] = self.lengths(following[check]) > 0
        return pos[ok]


class _Reader:
    """Section and interface state of one pcapng stream, carried across chunks."""

    def __init__(
        self, name: str, skips: Skips, batch_packets: int, statistics: InterfaceStatistics | None = None
    ) -> None:
        self.name = name
        self.skips = skips
        self.statistics = statistics
        self.batch_packets = batch_packets
        self.sections: list[Section] = []
        self.interfaces: list[Interface] = []

    def frames(self, chunks: Chunks) -> Iterator[Frames]:
        buf = chunks.buffer
        mean_record: float = chain.DEFAULT_MEAN_RECORD
        while True:
            big_endian = self.sections[-1].big_endian if self.sections else buf[8:12].tobytes() == b"\x1a\x2b\x3c\x4d"
            blocks = _Blocks(buf, big_endian)
            found, kinds, lengths, big = blocks.walk(mean_record)
            mean_record = found.mean_record(0)
            yield from self._section_runs(buf, chunks.start, found.offsets, kinds, lengths, big)
            if found.corrupt:
                where = f"{self.name} at byte {chunks.start + found.end}"
                self.skips.add("pcapng block with impossible length: rest of file unreadable", 1, where)
                return
            if chunks.at_eof:
                if chunks.broken:
                    self.skips.add(BROKEN_STREAM, 1, f"{self.name}: {chunks.broken}")
                elif found.end < buf.shape[0]:
                    trailing = f"{self.name}: {buf.shape[0] - found.end} trailing bytes"
                    self.skips.add("truncated last block", 1, trailing)
                return
            buf = chunks.next(found.end, int(self.batch_packets * mean_record * 0.95))  # about one batch per chunk

    def _section_runs(
        self, buf: np.ndarray, base: int, offsets: np.ndarray, kinds: np.ndarray, lengths: np.ndarray, big: np.ndarray
    ) -> Iterator[Frames]:
        """Read the section/interface blocks in order, then the packet blocks between them, all at once."""
        sections_before = len(self.sections)
        for row in np.flatnonzero((kinds == SHB) | (kinds == IDB)):
            pos, length = int(offsets[row]), int(lengths[row])
            if kinds[row] == SHB:
                self.sections.append(Section(bool(big[row]), len(self.interfaces)))
            elif not self.sections:
                self.skips.add("pcapng interface block before any section header (ignored)", 1, self.name)
            elif length < 20:
                self.skips.add("pcapng interface block too short (ignored)", 1, f"{self.name} at byte {base + pos}")
            else:
                order = ">" if self.sections[-1].big_endian else "<"  # blocks are in their section's order
                self.interfaces.append(_interface(buf[pos : pos + length - 4].tobytes(), order))
                self.sections[-1].interface_positions.append(base + pos)
        shb_rows = np.flatnonzero(kinds == SHB)

        def section_of(rows: np.ndarray) -> np.ndarray:
            """Index in ``self.sections`` of the section each block row belongs to (-1: before any)."""
            return sections_before - 1 + np.searchsorted(offsets[shb_rows], offsets[rows], side="right")

        if self.statistics is not None:
            isb_rows = np.flatnonzero(kinds == ISB)
            for isb, section_index in zip(isb_rows.tolist(), section_of(isb_rows).tolist(), strict=True):
                self._statistics(buf, int(offsets[isb]), int(lengths[isb]), section_index, self.statistics)
        packets = np.flatnonzero((kinds == EPB) | (kinds == SPB) | (kinds == OPB))
        if packets.shape[0] == 0:
            return
        if not self.sections:
            self.skips.add("pcapng packet block before any section header", int(packets.shape[0]), self.name)
            return
        section = section_of(packets)
        for first in range(0, packets.shape[0], self.batch_packets):
            rows = packets[first : first + self.batch_packets]
            frames = self._packets(
                buf, base, offsets[rows], kinds[rows], lengths[rows], section[first : first + rows.shape[0]]
            )
            if frames is not None:
                yield frames

    def _statistics(
        self, buf: np.ndarray, pos: int, length: int, section_index: int, statistics: InterfaceStatistics
    ) -> None:
        """One Interface Statistics Block (interface id, timestamp, options) of section ``section_index`` into
        ``statistics``; one naming no interface of its section, or too short for its fields, tells nothing."""
        if section_index < 0 or length < 24:
            return
        section = self.sections[section_index]
        following = self.sections[section_index + 1 :]
        end = following[0].first_interface if following else len(self.interfaces)
        order = ">" if section.big_endian else "<"
        body = buf[pos : pos + length - 4].tobytes()
        index = section.first_interface + struct.unpack_from(order + "I", body, 8)[0]
        if index < end:
            statistics.record(self.interfaces[index].name or f"#{index}", _options(body, 20, order), order)

    def _packets(
        self,
        buf: np.ndarray,
        base: int,
        offsets: np.ndarray,
        kinds: np.ndarray,
        length: np.ndarray,
        section: np.ndarray,
    ) -> Frames | None:
        blocks = _Blocks(buf)
        before_any = section < 0
        if before_any.any():
            self.skips.add("pcapng packet block before any section header", int(before_any.sum()), self.name)
        section = np.maximum(section, 0)
        big = np.array([s.big_endian for s in self.sections])[section]
        words = blocks.words(offsets + 8, 5, big).T
        simple = kinds == SPB
        obsolete = kinds == OPB
        iface = np.where(simple, 0, words[0])
        iface = np.where(obsolete, np.where(big, iface >> 16, iface & 0xFFFF), iface)
        ts = np.where(simple, 0, (words[1] << 32) | words[2])
        caplen = np.where(simple, np.minimum(words[0], length - 16), words[3])
        wirelen = np.where(simple, words[0], words[4])
        start = offsets + np.where(simple, 12, 28)

        # An interface id is valid when that many interface blocks of its section came before the packet.
        first_interface = np.array([s.first_interface for s in self.sections])[section]
        declared = np.zeros(offsets.shape[0], np.int64)
        for number in np.unique(section):
            mine = section == number
            positions = np.array(self.sections[number].interface_positions, np.int64)
            declared[mine] = np.searchsorted(positions, base + offsets[mine])
        known = ~before_any & (iface < declared)
        if not (known | before_any).all():
            example = f"{self.name}: interface {int(iface[~known & ~before_any][0])}"
            self.skips.add("packet block for an undeclared interface", int((~known & ~before_any).sum()), example)
        fits = start + caplen <= offsets + length - 4
        bad_length = known & ~fits
        if bad_length.any():
            self.skips.add("packet block whose captured length exceeds the block", int(bad_length.sum()), self.name)
        keep = known & fits
        if not keep.any():
            return None
        interface = (first_interface + iface)[keep]
        ts, caplen, wirelen, start, simple = (a[keep] for a in (ts, caplen, wirelen, start, simple))
        table = np.array([(i.linktype, i.snaplen) for i in self.interfaces], np.int64)
        snaplen = table[interface, 1]
        caplen = np.where(simple & (snaplen > 0), np.minimum(caplen, snaplen), caplen)
        ts_ns = np.zeros(interface.shape[0], np.int64)
        for number in np.unique(interface[~simple]):
            mine = (interface == number) & ~simple
            ts_ns[mine], in_range = _to_ns(ts[mine], self.interfaces[number])
            if not in_range.all():
                reason = "timestamp outside 1970..2262 (packet kept, time 0)"
                self.skips.add(reason, int((~in_range).sum()), self.name)
        if simple.any():
            self.skips.add("simple packet blocks carry no timestamp (packet kept, time 0)", int(simple.sum()))
        return Frames(
            data=buf,
            offsets=start,
            caplens=caplen,
            wirelens=np.maximum(wirelen, caplen),
            linktypes=table[interface, 0],
            ts_ns=ts_ns,
        )


def _to_ns(ts: np.ndarray, interface: Interface) -> tuple[np.ndarray, np.ndarray]:
    """Timestamps in the interface's units -> (nanoseconds since the epoch, which ones fit in int64)."""
    exponent = interface.tsresol & 0x7F
    ticks_per_second = float(2**exponent if interface.tsresol & 0x80 else 10**exponent)
    seconds = ts.astype(np.float64) / ticks_per_second + interface.tsoffset
    fits = (seconds >= 0) & (seconds < MAX_SECONDS)
    ts = np.where(fits, ts, 0).astype(np.uint64)
    if interface.tsresol & 0x80 and exponent >= 64:  # every 64-bit count is under a second: no whole part
        ns = np.round(ts.astype(np.float64) / ticks_per_second * 1e9).astype(np.int64)
    elif interface.tsresol & 0x80:
        whole = (ts >> np.uint64(exponent)).astype(np.int64) * 1_000_000_000
        fraction = (ts & np.uint64((1 << exponent) - 1)).astype(np.float64) / float(1 << exponent)
        ns = whole + np.round(fraction * 1e9).astype(np.int64)
    elif exponent <= 9:
        ns = ts.astype(np.int64) * 10 ** (9 - exponent)
    else:
        ns = (ts // np.uint64(10 ** (exponent - 9))).astype(np.int64)
    return np.where(fits, ns + interface.tsoffset * 1_000_000_000, 0), fits


def read_frames(
    chunks: Chunks, name: str, skips: Skips, batch_packets: int, statistics: InterfaceStatistics | None = None
) -> Iterator[Frames]:
    """Frames of one pcapng file; damaged blocks are counted, a file that is no pcapng raises. ``statistics``
    collects its Interface Statistics Blocks."""
    if not sniff(chunks.buffer[:12].tobytes()):
        raise FlowscopeError(f"{name}: not a pcapng file")
    yield from _Reader(name, skips, batch_packets, statistics).frames(chunks)
