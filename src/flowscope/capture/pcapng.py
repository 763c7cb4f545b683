"""pcapng files: sections of either byte order, interfaces with their own link type and timestamp resolution.

Blocks are walked with one tight offset loop per chunk (each block header gives its length); section and
interface blocks update the per-section interface table, and the fields of all packet blocks (EPB, SPB,
obsolete Packet Block) of a run are then gathered at once. Name resolution, statistics, custom and
unknown blocks carry no packets and are passed over, as the format asks of readers.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np

from flowscope.capture.frames import Frames
from flowscope.diagnostics import Skips
from flowscope.errors import FlowscopeError

SHB = 0x0A0D0D0A
IDB = 0x00000001
OPB = 0x00000002  # obsolete Packet Block
SPB = 0x00000003
EPB = 0x00000006
PACKET_BLOCKS = (OPB, SPB, EPB)
BYTE_ORDER_MAGIC = 0x1A2B3C4D
OPT_END = 0
IF_TSRESOL = 9
IF_TSOFFSET = 14
MAX_BLOCK = 16 << 20
CHUNK_BYTES = 32 << 20
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
    byteorder: str
    interfaces: list[Interface] = field(default_factory=list)


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


def _section_order(buf: bytes, pos: int) -> str | None:
    magic = buf[pos + 8 : pos + 12]
    return {b"\x4d\x3c\x2b\x1a": "<", b"\x1a\x2b\x3c\x4d": ">"}.get(magic)


class _Reader:
    """Walks the blocks of one pcapng stream, yielding runs of packet blocks from one section."""

    def __init__(self, name: str, skips: Skips, batch_packets: int) -> None:
        self.name = name
        self.skips = skips
        self.batch_packets = batch_packets
        self.section: Section | None = None
        self.consumed = 0  # bytes of the stream before the current buffer

    def frames(self, stream: BinaryIO) -> Iterator[Frames]:
        pending = b""
        while True:
            chunk = stream.read(CHUNK_BYTES)
            buf = pending + chunk if pending else chunk
            pos = 0
            while True:
                offsets, kinds, pos, stop = self._walk(buf, pos)
                if offsets:
                    yield from self._packets(buf, np.asarray(offsets, np.int64), np.asarray(kinds, np.int64))
                if stop == "corrupt":
                    return
                if stop != "full":
                    break
            self.consumed += pos
            pending = buf[pos:]
            if not chunk:
                if pending:
                    self.skips.add("truncated last block", 1, f"{self.name}: {len(pending)} trailing bytes")
                return

    def _walk(self, buf: bytes, pos: int) -> tuple[list[int], list[int], int, str]:
        """Packet-block offsets of one section from ``pos``; stops at a new section, a full batch or the buffer end."""
        offsets: list[int] = []
        kinds: list[int] = []
        section = self.section
        header = struct.Struct((section.byteorder if section else "<") + "II").unpack_from
        while pos + 12 <= len(buf):
            if buf[pos : pos + 4] == b"\x0a\x0d\x0d\x0a":
                if offsets:
                    return offsets, kinds, pos, "full"  # emit this section's packets under its own table
                order = _section_order(buf, pos)
                if order is None:
                    self._corrupt(pos, "section header with an unknown byte-order magic")
                    return offsets, kinds, pos, "corrupt"
                header = struct.Struct(order + "II").unpack_from
                section = self.section = Section(order)
            elif section is None:
                self._corrupt(pos, "block before the first section header")
                return offsets, kinds, pos, "corrupt"
            kind, length = header(buf, pos)
            if length < 12 or length % 4 or length > MAX_BLOCK:
                self._corrupt(pos, f"block with impossible length {length}")
                return offsets, kinds, pos, "corrupt"
            if pos + length > len(buf):
                break
            if kind in PACKET_BLOCKS:
                offsets.append(pos)
                kinds.append(kind)
                if len(offsets) >= self.batch_packets:
                    return offsets, kinds, pos + length, "full"
            elif kind == IDB:
                if offsets:
                    return offsets, kinds, pos, "full"  # interface tables only grow; flush keeps it simple
                if length < 20:
                    self._corrupt(pos, "interface description block too short")
                    return offsets, kinds, pos, "corrupt"
                section.interfaces.append(_interface(buf[pos : pos + length - 4], section.byteorder))
            pos += length
        return offsets, kinds, pos, "end"

    def _corrupt(self, pos: int, what: str) -> None:
        self.skips.add(f"pcapng {what}: rest of file unreadable", 1, f"{self.name} at byte {self.consumed + pos}")

    def _packets(self, buf: bytes, offsets: np.ndarray, kinds: np.ndarray) -> Iterator[Frames]:
        assert self.section is not None
        order = self.section.byteorder
        interfaces = self.section.interfaces
        data = np.frombuffer(buf, np.uint8)
        u32 = np.dtype(order + "u4")
        words = data[np.minimum(offsets[:, None] + np.arange(28), data.shape[0] - 1)].view(u32).astype(np.int64)
        length = words[:, 1]
        simple = kinds == SPB
        iface = np.where(kinds == EPB, words[:, 2], np.where(kinds == OPB, _opb_interface(words[:, 2], order), 0))
        ts = np.where(simple, 0, (words[:, 3] << 32) | words[:, 4])
        caplen = np.where(simple, np.minimum(words[:, 2], length - 16), words[:, 5])
        wirelen = np.where(simple, words[:, 2], words[:, 6])
        start = offsets + np.where(simple, 12, 28)
        known = iface < len(interfaces)
        if not known.all():
            self.skips.add(
                "packet block for an undeclared interface",
                int((~known).sum()),
                f"{self.name}: interface {iface[~known][0]}",
            )
        fits = start + caplen <= offsets + length - 4
        bad_length = known & ~fits
        if bad_length.any():
            self.skips.add("packet block whose captured length exceeds the block", int(bad_length.sum()), self.name)
        keep = known & fits
        if not keep.all():
            iface, ts, caplen, wirelen, start, simple = (a[keep] for a in (iface, ts, caplen, wirelen, start, simple))
        if not interfaces or iface.shape[0] == 0:
            return
        table = np.array([(i.linktype, i.snaplen) for i in interfaces], np.int64)
        snaplen = table[iface, 1]
        caplen = np.where(simple & (snaplen > 0), np.minimum(caplen, snaplen), caplen)
        ts_ns = np.zeros(iface.shape[0], np.int64)
        for number, interface in enumerate(interfaces):
            mine = iface == number
            if mine.any():
                ts_ns[mine], fits = _to_ns(ts[mine], interface)
                if not fits.all():
                    self.skips.add("timestamp outside 1970..2262 (packet kept, time 0)", int((~fits).sum()), self.name)
        no_time = simple
        if no_time.any():
            self.skips.add("simple packet blocks carry no timestamp (packet kept, time 0)", int(no_time.sum()))
            ts_ns[no_time] = 0
        yield Frames(
            data=data,
            offsets=start,
            caplens=caplen,
            wirelens=np.maximum(wirelen, caplen),
            linktypes=table[iface, 0],
            ts_ns=ts_ns,
        )


def _opb_interface(word: np.ndarray, order: str) -> np.ndarray:
    """The obsolete Packet Block packs a 16-bit interface id and a 16-bit drop count in one word."""
    return (word & 0xFFFF) if order == "<" else (word >> 16)


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


def read_frames(stream: BinaryIO, name: str, skips: Skips, batch_packets: int) -> Iterator[Frames]:
    """Frames of one pcapng stream; damaged blocks are counted, a stream that is no pcapng raises."""
    head = stream.read(12)
    if not sniff(head):
        raise FlowscopeError(f"{name}: not a pcapng file")
    stream.seek(0)
    yield from _Reader(name, skips, batch_packets).frames(stream)
