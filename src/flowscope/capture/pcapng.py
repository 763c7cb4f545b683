"""pcapng files: sections of either byte order, interfaces with their own link type and timestamp resolution.

Blocks are found with a compiled chain walk (``_walk``: each block header gives its length; the copy of
the length in the block trailer confirms it, section headers set the byte order). Section and interface
blocks are few and are read one by one to build the interface tables; the fields of all packet
blocks (EPB, SPB, obsolete Packet Block) are then gathered at once. Name resolution, statistics,
custom and unknown blocks carry no packets and are passed over, as the format asks of readers.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

import numba
import numpy as np

from flowscope.capture import chain
from flowscope.capture.chunks import BROKEN_STREAM, Chunks
from flowscope.capture.frames import Frames
from flowscope.diagnostics import Skips
from flowscope.errors import FlowscopeError

SHB = 0x0A0D0D0A
IDB = 0x00000001
OPB = 0x00000002  # obsolete Packet Block
SPB = 0x00000003
EPB = 0x00000006
BYTE_ORDER_MAGIC = 0x1A2B3C4D
OPT_END = 0
IF_TSRESOL = 9
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


@dataclass
class Section:
    big_endian: bool
    first_interface: int  # index of its first interface in the reader's interface list
    interface_positions: list[int] = field(default_factory=list)  # stream offsets of its IDBs


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
    if IF_TSOFFSET in options and len(options[IF_TSOFFSET]) == 8:
        interface.tsoffset = struct.unpack(order + "q", options[IF_TSOFFSET])[0]
    return interface


@numba.njit(cache=True, inline="always")
def _block_length(buf: np.ndarray, pos: int, big: bool) -> int:
    """Total length of the non-section block at ``pos`` read in byte order ``big``, -1 when that cannot be it:
    a type that is no block type, a length that is no block length, or a trailer that does not repeat it
    (a block running past the buffer end is not checked here: it is incomplete)."""
    kind = chain.u32(buf, pos, big)
    length = chain.u32(buf, pos + 4, big)
    if length < BLOCK_HEADER or length % 4 or length > MAX_BLOCK or kind == SHB:
        return -1
    if not (kind < 0x10000 or kind >= 0x80000000 or kind == 0x40000BAD):
        return -1
    if pos + length <= buf.shape[0] and chain.u32(buf, pos + length - 4, big) != length:
        return -1
    return length


@numba.njit(cache=True, nogil=True)
def _walk(
    buf: np.ndarray, big: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, int]:
    """Every whole block of ``buf`` (offsets, types, lengths, big-endian?), where the walk stopped and why.

    ``big`` is the byte order in effect at the buffer start; a section header sets it from its byte-order
    magic. A block that fails in the order in effect is tried in little-endian, then big-endian order, and
    kept in the one that fits; when neither does the chain is corrupt. One compiled loop (``chain``).
    """
    size = buf.shape[0]
    most = size // BLOCK_HEADER + 1
    offsets = np.empty(most + 1, np.int64)  # the last slot: ``seen`` (``chain.touch``)
    kinds = np.empty(most, np.int64)
    lengths = np.empty(most, np.int64)
    bigs = np.empty(most, np.bool_)
    count, pos, status = 0, 0, chain.REACHED_END
    touched, seen = 0, 0
    while pos + BLOCK_HEADER <= size:
        touched, seen = chain.touch(buf, touched, pos, seen)
        order = big
        if chain.u32(buf, pos, False) == SHB:
            if chain.u32(buf, pos + 8, True) == BYTE_ORDER_MAGIC:
                order = True
            elif chain.u32(buf, pos + 8, False) == BYTE_ORDER_MAGIC:
                order = False
            else:
                status = chain.CORRUPT
                break
            length = chain.u32(buf, pos + 4, order)
            if length < 28 or length % 4 or length > MAX_BLOCK:
                status = chain.CORRUPT
                break
            big = order
        else:
            length = _block_length(buf, pos, order)
            if length < 0:
                order = False
                length = _block_length(buf, pos, False)
            if length < 0:
                order = True
                length = _block_length(buf, pos, True)
            if length < 0:
                status = chain.CORRUPT
                break
        if pos + length > size:
            break
        offsets[count] = pos
        kinds[count] = chain.u32(buf, pos, order)
        lengths[count] = length
        bigs[count] = order
        count += 1
        pos += length
    offsets[-1] = seen
    if status != chain.CORRUPT and pos != size:
        status = chain.INCOMPLETE
    return offsets[:count], kinds[:count], lengths[:count], bigs[:count], pos, status


def _words(buf: np.ndarray, pos: np.ndarray, count: int, big: np.ndarray) -> np.ndarray:
    """(n, count) int64: ``count`` consecutive 32-bit words at ``pos``, each row in its own byte order.

    Gathered as opaque items (a plain copy, far cheaper than gathering unaligned integers), then read."""
    items = np.ndarray((max(buf.shape[0] - 4 * count + 1, 0),), f"V{4 * count}", buf, strides=(1,))
    raw = items[np.minimum(pos, items.shape[0] - 1)]
    little = raw.view("<u4").reshape(-1, count).astype(np.int64)
    if not big.any():
        return little
    return np.where(big[:, None], raw.view(">u4").reshape(-1, count), little)


class _Reader:
    """Section and interface state of one pcapng stream, carried across chunks."""

    def __init__(self, name: str, skips: Skips, batch_packets: int) -> None:
        self.name = name
        self.skips = skips
        self.batch_packets = batch_packets
        self.sections: list[Section] = []
        self.interfaces: list[Interface] = []

    def frames(self, chunks: Chunks) -> Iterator[Frames]:
        buf = chunks.buffer
        while True:
            big_endian = self.sections[-1].big_endian if self.sections else buf[8:12].tobytes() == b"\x1a\x2b\x3c\x4d"
            offsets, kinds, lengths, big, end, status = _walk(buf, big_endian)
            found = chain.Chain(offsets, int(end), status == chain.CORRUPT)
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
        packets = np.flatnonzero((kinds == EPB) | (kinds == SPB) | (kinds == OPB))
        if packets.shape[0] == 0:
            return
        if not self.sections:
            self.skips.add("pcapng packet block before any section header", int(packets.shape[0]), self.name)
            return
        shb_rows = np.flatnonzero(kinds == SHB)
        section = sections_before - 1 + np.searchsorted(offsets[shb_rows], offsets[packets], side="right")
        for first in range(0, packets.shape[0], self.batch_packets):
            rows = packets[first : first + self.batch_packets]
            frames = self._packets(
                buf, base, offsets[rows], kinds[rows], lengths[rows], section[first : first + rows.shape[0]]
            )
            if frames is not None:
                yield frames

    def _packets(
        self,
        buf: np.ndarray,
        base: int,
        offsets: np.ndarray,
        kinds: np.ndarray,
        length: np.ndarray,
        section: np.ndarray,
    ) -> Frames | None:
        before_any = section < 0
        if before_any.any():
            self.skips.add("pcapng packet block before any section header", int(before_any.sum()), self.name)
        section = np.maximum(section, 0)
        big = np.array([s.big_endian for s in self.sections])[section]
        words = _words(buf, offsets + 8, 5, big).T
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
    if interface.tsresol & 0x80:
        whole = (ts >> np.uint64(exponent)).astype(np.int64) * 1_000_000_000
        fraction = (ts & np.uint64((1 << exponent) - 1)).astype(np.float64) / float(1 << exponent)
        ns = whole + np.round(fraction * 1e9).astype(np.int64)
    elif exponent <= 9:
        ns = ts.astype(np.int64) * 10 ** (9 - exponent)
    else:
        ns = (ts // np.uint64(10 ** (exponent - 9))).astype(np.int64)
    return np.where(fits, ns + interface.tsoffset * 1_000_000_000, 0), fits


def read_frames(chunks: Chunks, name: str, skips: Skips, batch_packets: int) -> Iterator[Frames]:
    """Frames of one pcapng file; damaged blocks are counted, a file that is no pcapng raises."""
    if not sniff(chunks.buffer[:12].tobytes()):
        raise FlowscopeError(f"{name}: not a pcapng file")
    yield from _Reader(name, skips, batch_packets).frames(chunks)
