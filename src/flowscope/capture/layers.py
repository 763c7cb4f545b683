"""Vectorised packet-layer decoding: link layers, VLAN/MPLS/PPPoE, IPv4/IPv6, transport ports, tunnels.

Every step works on arrays of byte offsets into one buffer and handles one kind of header for all
packets that have it (numpy gathers), so the Python loops run over header *kinds* and nesting
depth, never over packets. Frames that are not decodable IP are dropped and counted per reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from flowscope.capture.packets import COLUMNS, PacketBatch
from flowscope.diagnostics import Skips

# Link types (https://www.tcpdump.org/linktypes.html).
LINK_NULL = 0
LINK_ETHERNET = 1
LINK_PPP = 9
LINK_RAW_BSD = 12
LINK_RAW_OPENBSD = 14
LINK_PPP_HDLC = 50
LINK_RAW = 101
LINK_C_HDLC = 104
LINK_LOOP = 108
LINK_LINUX_SLL = 113
LINK_IPV4 = 228
LINK_IPV6 = 229
LINK_LINUX_SLL2 = 276
KNOWN_LINKTYPES = frozenset(
    {
        LINK_NULL,
        LINK_ETHERNET,
        LINK_PPP,
        LINK_RAW_BSD,
        LINK_RAW_OPENBSD,
        LINK_PPP_HDLC,
        LINK_RAW,
        LINK_C_HDLC,
        LINK_LOOP,
        LINK_LINUX_SLL,
        LINK_IPV4,
        LINK_IPV6,
        LINK_LINUX_SLL2,
    }
)

ETH_IPV4 = 0x0800
ETH_IPV6 = 0x86DD
ETH_VLAN = (0x8100, 0x88A8, 0x9100)
ETH_MPLS = (0x8847, 0x8848)
ETH_PPPOE_SESSION = 0x8864
ETH_BRIDGED = 0x6558  # transparent Ethernet bridging: an Ethernet frame follows (GRE, VXLAN, EoMPLS)
ETH_BY_IP_NIBBLE = -1  # pseudo ethertype: decide IPv4/IPv6 from the version nibble (raw IP, MPLS, GTP-U)
ETH_PPP = 0x880B  # a PPP frame follows (DLT_PPP, PPPoE sessions, enhanced GRE as used by PPTP)

PROTO_ICMP = 1
PROTO_IPIP = 4
PROTO_TCP = 6
PROTO_UDP = 17
PROTO_IPV6 = 41
PROTO_GRE = 47
PROTO_ICMPV6 = 58
PROTO_SCTP = 132
IPV6_EXTENSIONS = (0, 43, 44, 51, 60, 135, 139, 140)
PORT_VXLAN = 4789
PORT_GTP_U = 2152
PORT_TEREDO = 3544
PORT_MPLS_UDP = 6635  # RFC 7510
PORT_L2TP = 1701
MAX_NESTING = 8  # VLAN/MPLS/PPPoE/extension-header depth we follow before calling a packet malformed
MAX_TUNNELS = 3
COMMON_WIDTH = 68  # Ethernet + IPv6 + the first 14 bytes of TCP: the widest header run of a common frame
MAX_HEADER_READ = 96  # the widest window read at once (a capture record header and COMMON_WIDTH), rounded up
_MAPPED_PREFIX = np.frombuffer(b"\x00\x00\xff\xff", np.uint32)[0]  # bytes 8-11 of an IPv4-mapped address
_TUNNEL_PORTS = (PORT_VXLAN, PORT_GTP_U, PORT_TEREDO, PORT_MPLS_UDP, PORT_L2TP)
BLOCK_ROWS = 32768  # rows decoded together: small enough that a block's frames stay in the CPU cache

# Why a frame was dropped, as small integer codes so counting is one bincount.
OK = 0
REASONS = {
    1: "unknown link type",
    2: "frame shorter than its link-layer header",
    3: "not IP (other ethertype or PPP protocol)",
    4: "IPv4 header cut short (snaplen or truncated record)",
    5: "malformed IPv4 header (version or header length)",
    6: "IPv6 header cut short (snaplen or truncated record)",
    7: "malformed IPv6 header (version)",
    8: "too many nested VLAN/MPLS/extension headers",
    9: "MPLS payload is neither IPv4, IPv6 nor Ethernet",
}
PARTIAL_REASONS = {
    1: "transport header cut by snaplen (packet kept, ports/flags missing)",
    2: "tunnel payload not decodable (packet kept with outer headers)",
}


class ByteView:
    """Reads at arbitrary byte offsets of one buffer: whole headers or big-endian integers, one gather each.

    Reads past the captured frame (``pos + width > end``) give 0, so a cut header never borrows bytes
    of the next frame; callers pass ``end=None`` when they know the whole group of rows is complete.
    """

    def __init__(self, data: np.ndarray) -> None:
        if data.shape[0] < MAX_HEADER_READ:  # so every window view below has at least one item
            data = np.concatenate([data, np.zeros(MAX_HEADER_READ, np.uint8)])
        self.data = data
        self.by_width: dict[int, np.ndarray] = {1: data}

    def _items(self, width: int) -> np.ndarray:
        """Overlapping view: item i holds bytes i .. i+width-1. Gathering such opaque items is a plain copy,
        several times faster than gathering unaligned integers."""
        items = self.by_width.get(width)
        if items is None:
            size = self.data.shape[0] - width + 1
            items = self.by_width[width] = np.ndarray((size,), f"V{width}", self.data, strides=(1,))
        return items

    def header(self, pos: np.ndarray, width: int, end: np.ndarray | None) -> np.ndarray:
        """(n, width) bytes at ``pos`` in one gather (bytes past ``end`` read as 0): a whole header per row,
        whose fields are then cheap column operations instead of one gather each."""
        items = self._items(width)
        matrix = items[np.minimum(pos, items.shape[0] - 1)].view(np.uint8).reshape(-1, width)
        near_end = pos + width > self.data.shape[0]
        if near_end.any():  # windows running past the buffer: read them from a zero-padded copy of its tail
            tail_start = max(0, self.data.shape[0] - 4 * width)
            tail = np.concatenate([self.data[tail_start:], np.zeros(width, np.uint8)])
            index = (pos[near_end] - tail_start)[:, None] + np.arange(width)
            matrix[near_end] = tail[np.clip(index, 0, tail.shape[0] - 1)]
        if end is not None:
            matrix = matrix * (np.arange(width) < (end - pos)[:, None])
        return matrix

    def read(self, width: int, pos: np.ndarray, end: np.ndarray | None) -> np.ndarray:
        """One big-endian integer of ``width`` bytes per row, as int64."""
        items = self._items(width)
        values = items[np.minimum(pos, items.shape[0] - 1)]
        if width > 1:
            values = values.view(f">u{width}")
        if end is not None:
            values = np.where(pos + width <= end, values, 0)
        return values.astype(np.int64)


def _any_of(values: np.ndarray, choices: tuple[int, ...]) -> np.ndarray:
    """``np.isin`` for a handful of choices (one comparison per choice; isin's set machinery costs more)."""
    found = values == choices[0]
    for choice in choices[1:]:
        found |= values == choice
    return found


def _u8(buf: ByteView, pos: np.ndarray, end: np.ndarray | None) -> np.ndarray:
    return buf.read(1, pos, end)


def _u16(buf: ByteView, pos: np.ndarray, end: np.ndarray | None) -> np.ndarray:
    return buf.read(2, pos, end)


def _u32(buf: ByteView, pos: np.ndarray, end: np.ndarray | None) -> np.ndarray:
    return buf.read(4, pos, end)


def _field(matrix: np.ndarray, start: int, width: int) -> np.ndarray:
    """Big-endian unsigned integer from columns ``start .. start+width-1`` of a header matrix."""
    value = matrix[:, start].astype(np.int64)
    for column in range(start + 1, start + width):
        value = (value << 8) | matrix[:, column]
    return value


def _complete(pos: np.ndarray, end: np.ndarray, width: int) -> np.ndarray | None:
    """``end`` when some rows lack ``width`` captured bytes from ``pos`` (reads must check), else None."""
    return None if (pos + width <= end).all() else end


def _as_rows(matrix: np.ndarray) -> np.ndarray:
    """An (n, 16) byte matrix as n 16-byte items: row copies become single-item copies (far cheaper)."""
    return matrix.view("V16").reshape(-1)


@dataclass
class _Network:
    """Network-and-transport fields decoded for a subset of rows, plus where each IP payload lies."""

    columns: dict[str, np.ndarray]
    reason: np.ndarray  # int8 code from REASONS, OK when decoded
    partial: np.ndarray  # int8 code from PARTIAL_REASONS, 0 when complete
    payload_pos: np.ndarray  # int64 start of the IP payload (L4 header)
    payload_end: np.ndarray  # int64 end of the IP payload within the capture


def _link_layer(
    buf: ByteView,
    offsets: np.ndarray,
    caplens: np.ndarray,
    linktypes: np.ndarray,
    dst_mac: np.ndarray,
    src_mac: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: start of the network layer, its ethertype (or ETH_BY_IP_NIBBLE) and a reason code.

    Ethernet MAC addresses are written into ``dst_mac``/``src_mac`` on the way.
    """
    n = offsets.shape[0]
    end = offsets + caplens
    etype = np.zeros(n, np.int64)
    reason = np.where(_any_of(linktypes, tuple(KNOWN_LINKTYPES)), OK, 1).astype(np.int8)
    header = np.zeros(n, np.int64)

    eth = linktypes == LINK_ETHERNET
    if eth.any():
        eth = slice(None) if eth.all() else eth
        at = offsets[eth]
        header[eth] = 14
        frame = buf.header(at, 14, _complete(at, end[eth], 14))
        etype[eth] = _field(frame, 12, 2)
        dst_mac[eth] = _field(frame, 0, 6)
        src_mac[eth] = _field(frame, 6, 6)
    sll = linktypes == LINK_LINUX_SLL
    header[sll] = 16
    etype[sll] = _u16(buf, offsets[sll] + 14, end[sll])
    sll2 = linktypes == LINK_LINUX_SLL2
    header[sll2] = 20
    etype[sll2] = _u16(buf, offsets[sll2], end[sll2])
    etype[_any_of(linktypes, (LINK_RAW, LINK_RAW_BSD, LINK_RAW_OPENBSD))] = ETH_BY_IP_NIBBLE
    etype[linktypes == LINK_IPV4] = ETH_IPV4
    etype[linktypes == LINK_IPV6] = ETH_IPV6

    null = _any_of(linktypes, (LINK_NULL, LINK_LOOP))
    if null.any():
        at, stop = offsets[null], end[null]
        # DLT_NULL is in the writer's byte order; a family value fits in 16 bits, which tells the order.
        big = _u32(buf, at, stop)
        little = _u8(buf, at, stop) | (_u8(buf, at + 1, stop) << 8)
        family = np.where(big <= 0xFFFF, big, np.where(_u16(buf, at + 2, stop) == 0, little, 0))
        etype[null] = np.select([family == 2, _any_of(family, (10, 23, 24, 28, 30))], [ETH_IPV4, ETH_IPV6], 0)
        header[null] = 4

    etype[_any_of(linktypes, (LINK_PPP, LINK_PPP_HDLC))] = ETH_PPP  # the PPP header is peeled like an encapsulation
    hdlc = linktypes == LINK_C_HDLC
    header[hdlc] = 4
    etype[hdlc] = _u16(buf, offsets[hdlc] + 2, end[hdlc])

    pos = offsets + header
    reason[(reason == OK) & (pos > end)] = 2
    return pos, etype, reason


def _ppp(buf: ByteView, pos: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PPP header at ``pos`` -> (ethertype of what it carries, header length).

    Handles the optional HDLC address/control bytes, protocol-field compression, and Cisco HDLC
    framing (address 0x0f/0x8f, control 0, then an ethertype), which is also written as DLT_PPP.
    """
    first_word = _u16(buf, pos, end)
    framed = first_word == 0xFF03
    start = pos + np.where(framed, 2, 0)
    first = _u8(buf, start, end)
    compressed = (first & 1) == 1
    protocol = np.where(compressed, first, _u16(buf, start, end))
    carried = np.select([protocol == 0x0021, protocol == 0x0057, protocol == 0x0281], [ETH_IPV4, ETH_IPV6, 0x8847], 0)
    cisco = _any_of(first_word, (0x0F00, 0x8F00))
    etype = np.where(cisco, _u16(buf, pos + 2, end), carried)
    length = np.where(cisco, 4, np.where(framed, 2, 0) + np.where(compressed, 1, 2))
    return etype, length


def _unwrap(buf: ByteView, pos: np.ndarray, end: np.ndarray, etype: np.ndarray, vlan: np.ndarray | None) -> np.ndarray:
    """Peel VLAN tags, MPLS labels, PPPoE and bridged Ethernet in place; returns a reason code per row."""
    reason = np.zeros(pos.shape[0], np.int8)
    if not ((etype != ETH_IPV4) & (etype != ETH_IPV6)).any():
        return reason
    for _ in range(MAX_NESTING):
        tagged = _any_of(etype, ETH_VLAN)
        labelled = _any_of(etype, ETH_MPLS)
        pppoe = etype == ETH_PPPOE_SESSION
        ppp = etype == ETH_PPP
        bridged = etype == ETH_BRIDGED
        if not (tagged.any() or labelled.any() or pppoe.any() or ppp.any() or bridged.any()):
            return reason
        if tagged.any():
            at, stop = pos[tagged], end[tagged]
            if vlan is not None:
                first = tagged & (vlan == 0)
                vlan[first] = _u16(buf, pos[first], end[first]) & 0x0FFF
            etype[tagged] = _u16(buf, at + 2, stop)
            pos[tagged] = at + 4
        if labelled.any():
            at, stop = pos[labelled], end[labelled]
            bottom = (_u32(buf, at, stop) >> 8) & 1 == 1
            after = at + 4
            nibble = _u8(buf, after, stop) >> 4
            inner = np.select(
                [nibble == 4, nibble == 6, nibble == 0], [ETH_IPV4, ETH_IPV6, ETH_BRIDGED], -2
            )  # nibble 0: pseudowire control word, then an Ethernet frame (EoMPLS)
            inner_pos = np.where(nibble == 0, after + 4, after)
            etype[labelled] = np.where(bottom, inner, etype[labelled])
            pos[labelled] = np.where(bottom, inner_pos, after)
            bad = np.flatnonzero(labelled)[bottom & (inner == -2)]
            reason[bad] = 9
            etype[bad] = 0
        if pppoe.any():
            etype[pppoe] = ETH_PPP
            pos[pppoe] += 6
        if ppp.any():
            etype[ppp], length = _ppp(buf, pos[ppp], end[ppp])
            pos[ppp] += length
        if bridged.any():
            at, stop = pos[bridged], end[bridged]
            etype[bridged] = _u16(buf, at + 12, stop)
            pos[bridged] = at + 14
    still = _any_of(etype, (*ETH_VLAN, *ETH_MPLS, ETH_PPPOE_SESSION, ETH_PPP, ETH_BRIDGED))
    reason[still] = 8
    return reason


def _decode_network(
    buf: ByteView, pos: np.ndarray, end: np.ndarray, etype: np.ndarray, cols: dict[str, np.ndarray] | None = None
) -> _Network:
    """IPv4/IPv6 (with extension headers and fragments) and transport fields for rows starting at ``pos``.

    Written into ``cols`` (fresh zeroed columns, ``l4_offset`` -1) or into new columns when none are given.
    """
    n = pos.shape[0]
    if cols is None:
        cols = {name: np.zeros((n, *shape), dtype) for name, dtype, shape in COLUMNS if name not in _LINK_COLUMNS}
        cols["l4_offset"][:] = -1
    reason = np.zeros(n, np.int8)
    partial = np.zeros(n, np.int8)
    payload_pos = np.full(n, -1, np.int64)
    payload_end = np.zeros(n, np.int64)

    nibble = _u8(buf, pos, end) >> 4
    etype = np.where(etype == ETH_BY_IP_NIBBLE, np.select([nibble == 4, nibble == 6], [ETH_IPV4, ETH_IPV6], 0), etype)
    cols["etype"][:] = etype & 0xFFFF
    is4 = etype == ETH_IPV4
    is6 = etype == ETH_IPV6
    reason[~(is4 | is6)] = 3

    proto = np.zeros(n, np.int64)
    if is4.any():
        # IPv4 fields are read for every row and written whole (cheap contiguous writes); rows of other
        # kinds are overwritten below or dropped, which is cheaper than scattering into a masked subset.
        ip = buf.header(pos, 20, _complete(pos, end, 20))
        first = ip[:, 0]
        ihl = (first & 0x0F).astype(np.int64) * 4
        total = _field(ip, 2, 2)
        cut = is4 & (pos + 20 > end)
        reason[cut] = 4
        reason[is4 & ~cut & (((first >> 4) != 4) | (ihl < 20))] = 5
        cols["ip_version"][:] = np.where(is4, 4, 0)
        cols["ip_len"][:] = total
        cols["ip_tos"][:] = ip[:, 1]
        cols["frag_id"][:] = _field(ip, 4, 2)
        cols["frag_offset"][:] = _field(ip, 6, 2) & 0x1FFF
        cols["more_fragments"][:] = (ip[:, 6] & 0x20) != 0
        cols["ip_ttl"][:] = ip[:, 8]
        proto[:] = ip[:, 9]
        cols["src_addr"][:, 10:12] = 0xFF
        cols["src_addr"][:, 12:] = ip[:, 12:16]
        cols["dst_addr"][:, 10:12] = 0xFF
        cols["dst_addr"][:, 12:] = ip[:, 16:20]
        payload_pos[:] = np.where(is4, pos + ihl, -1)
        # A zero total length is what Linux records for segmentation-offload packets above 64 KiB: the
        # packet then runs to the end of the frame.
        payload_end[:] = np.where(total == 0, end, np.minimum(end, pos + np.maximum(total, ihl)))
    if is6.any():
        rows = np.flatnonzero(is6)
        at, stop = pos[rows], end[rows]
        cut = at + 40 > stop
        ip = buf.header(at, 40, stop if cut.any() else None)
        reason[rows[cut]] = 6
        reason[rows[~cut & ((ip[:, 0] >> 4) != 6)]] = 7
        length = _field(ip, 4, 2)
        cols["ip_version"][rows] = 6
        cols["ip_len"][rows] = length + 40
        cols["ip_tos"][rows] = (_field(ip, 0, 2) >> 4) & 0xFF
        cols["ip_ttl"][rows] = ip[:, 7]
        _as_rows(cols["src_addr"])[rows] = _as_rows(np.ascontiguousarray(ip[:, 8:24]))
        _as_rows(cols["dst_addr"])[rows] = _as_rows(np.ascontiguousarray(ip[:, 24:40]))
        payload_end[rows] = np.where(length == 0, stop, np.minimum(stop, at + 40 + length))  # 0: jumbogram
        nxt, ext_pos, ext_reason = _ipv6_extensions(buf, at + 40, stop, ip[:, 6].astype(np.int64), cols, rows)
        proto[rows] = nxt
        payload_pos[rows] = ext_pos
        reason[rows[(reason[rows] == OK) & (ext_reason != OK)]] = 8
    cols["proto"][:] = proto
    _transport(buf, payload_pos, payload_end, proto, cols, partial, reason == OK)
    return _Network(cols, reason, partial, payload_pos, payload_end)


_LINK_COLUMNS = frozenset({"ts_ns", "wire_len", "vlan_id", "src_mac", "dst_mac"})
_DECODED_COLUMNS = tuple(name for name, _, _ in COLUMNS if name not in ("ts_ns", "wire_len"))
_NETWORK_COLUMNS = tuple(name for name, _, _ in COLUMNS if name not in _LINK_COLUMNS and name != "etype")


def _ipv6_extensions(
    buf: ByteView, pos: np.ndarray, end: np.ndarray, nxt: np.ndarray, cols: dict[str, np.ndarray], rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Walk IPv6 extension headers; records the fragment header's fields; returns (proto, L4 start, reason)."""
    reason = np.zeros(pos.shape[0], np.int8)
    if not _any_of(nxt, IPV6_EXTENSIONS).any():
        cols["frag_id"][rows] = 0
        cols["frag_offset"][rows] = 0
        cols["more_fragments"][rows] = False
        return nxt, pos, reason
    pos = pos.copy()
    nxt = nxt.copy()
    frag_id = np.zeros(pos.shape[0], np.int64)
    frag_offset = np.zeros(pos.shape[0], np.int64)
    more = np.zeros(pos.shape[0], bool)
    for _ in range(MAX_NESTING):
        ext = _any_of(nxt, IPV6_EXTENSIONS) & (pos + 8 <= end)
        if not ext.any():
            break
        at, stop = pos[ext], end[ext]
        kind = nxt[ext]
        fragment = kind == 44
        length = np.select(
            [fragment, kind == 51], [8, (_u8(buf, at + 1, stop) + 2) * 4], (_u8(buf, at + 1, stop) + 1) * 8
        )
        field = _u16(buf, at + 2, stop)
        rows_ext = np.flatnonzero(ext)
        frag_rows = rows_ext[fragment]
        frag_offset[frag_rows] = field[fragment] >> 3
        more[frag_rows] = (field[fragment] & 1) == 1
        frag_id[frag_rows] = _u32(buf, at[fragment] + 4, stop[fragment])
        nxt[ext] = _u8(buf, at, stop)
        pos[ext] = at + length
    reason[_any_of(nxt, IPV6_EXTENSIONS) & (pos + 8 <= end)] = 8
    cols["frag_id"][rows] = frag_id
    cols["frag_offset"][rows] = frag_offset
    cols["more_fragments"][rows] = more
    return nxt, pos, reason


def _transport(
    buf: ByteView,
    pos: np.ndarray,
    end: np.ndarray,
    proto: np.ndarray,
    cols: dict[str, np.ndarray],
    partial: np.ndarray,
    decoded: np.ndarray,
) -> None:
    """Ports, TCP flags, ICMP type/code and the L4 payload span; later fragments carry no L4 header."""
    first_fragment = cols["frag_offset"] == 0
    base = decoded & first_fragment
    ported = base & _any_of(proto, (PROTO_TCP, PROTO_UDP, PROTO_SCTP))
    icmp = base & _any_of(proto, (PROTO_ICMP, PROTO_ICMPV6))
    if ported.any():
        # Read for every row, keep where ported: whole-column writes beat scattering into a subset.
        at = np.where(ported, pos, 0)
        stop = np.where(ported, end, 0)
        has_ports = ported & (at + 4 <= stop)  # both ports or neither: half a port pair makes a wrong flow key
        l4 = buf.header(at, 14, _complete(at, stop, 14))
        cols["src_port"][:] = np.where(has_ports, _field(l4, 0, 2), 0)
        cols["dst_port"][:] = np.where(has_ports, _field(l4, 2, 2), 0)
        is_tcp = ported & (proto == PROTO_TCP)
        tcp_offset = (l4[:, 12] >> 4).astype(np.int64) * 4
        header = np.where(is_tcp, np.maximum(tcp_offset, 20), np.where(proto == PROTO_UDP, 8, 12))
        complete = ported & (at + header <= stop)
        cols["tcp_flags"][:] = np.where(is_tcp, l4[:, 13], 0)
        cols["tcp_seq"][:] = np.where(is_tcp, _field(l4, 4, 4), 0)
        cols["tcp_ack"][:] = np.where(is_tcp, _field(l4, 8, 4), 0)
        partial[ported & ~complete] = 1
        start = at + header
        cols["l4_offset"][:] = np.where(complete, start, -1)
        cols["l4_len"][:] = np.where(complete, stop - start, 0)
    if icmp.any():
        at, stop = pos[icmp], end[icmp]
        cols["icmp_type"][icmp] = _u8(buf, at, stop)
        cols["icmp_code"][icmp] = _u8(buf, at + 1, stop)
        rows = np.flatnonzero(icmp)
        complete = at + 8 <= stop
        partial[rows[at + 2 > stop]] = 1
        cols["l4_offset"][rows[complete]] = (at + 8)[complete]
        cols["l4_len"][rows[complete]] = (stop - at - 8)[complete]


def _tunnel_payloads(buf: ByteView, net: _Network, end: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows that carry a tunnel we decapsulate, with where the inner packet starts and its ethertype."""
    cols = net.columns
    usable = (net.reason == OK) & (cols["frag_offset"] == 0) & ~cols["more_fragments"]
    proto = cols["proto"]
    pos = net.payload_pos
    inner_pos = np.full(pos.shape[0], -1, np.int64)
    inner_type = np.zeros(pos.shape[0], np.int64)

    ipip = usable & _any_of(proto, (PROTO_IPIP, PROTO_IPV6))
    inner_pos[ipip] = pos[ipip]
    inner_type[ipip] = np.where(proto[ipip] == PROTO_IPIP, ETH_IPV4, ETH_IPV6)

    gre = usable & (proto == PROTO_GRE)
    if gre.any():
        at, stop = pos[gre], end[gre]
        flags = _u16(buf, at, stop)
        length = 4 + 4 * (((flags & 0x8000) != 0) | ((flags & 0x4000) != 0)) + 4 * ((flags & 0x2000) != 0)
        length = length + 4 * ((flags & 0x1000) != 0)
        version = flags & 0x7
        # Enhanced GRE (version 1, RFC 2637) always has a key, and an acknowledgment number when A is set.
        length = np.where(version == 1, length + 4 * ((flags & 0x0080) != 0), length)
        known = (version == 0) | (version == 1)
        rows = np.flatnonzero(gre)[known]
        inner_pos[rows] = (at + length)[known]
        inner_type[rows] = _u16(buf, at + 2, stop)[known]

    udp = usable & (proto == PROTO_UDP) & (cols["l4_offset"] >= 0)
    ports = (cols["src_port"], cols["dst_port"])
    on_port = [udp & ((ports[0] == p) | (ports[1] == p)) for p in (PORT_VXLAN, PORT_GTP_U, PORT_TEREDO)]
    vxlan, gtp, teredo = on_port
    mpls = udp & (ports[1] == PORT_MPLS_UDP)
    inner_pos[mpls] = cols["l4_offset"][mpls]
    inner_type[mpls] = ETH_MPLS[0]
    l2tp = udp & ((ports[0] == PORT_L2TP) | (ports[1] == PORT_L2TP))
    if l2tp.any():
        at, stop = cols["l4_offset"][l2tp], end[l2tp]
        flags = _u16(buf, at, stop)
        # L2TPv2 data messages (RFC 2661): optional length, sequence numbers and offset padding, then PPP.
        start = at + 6 + 2 * ((flags & 0x4000) != 0) + 4 * ((flags & 0x0800) != 0)
        padded = (flags & 0x0200) != 0
        start = np.where(padded, start + 2 + _u16(buf, start, stop), start)
        valid = ((flags & 0x8000) == 0) & ((flags & 0x000F) == 2)
        rows = np.flatnonzero(l2tp)[valid]
        inner_pos[rows] = start[valid]
        inner_type[rows] = ETH_PPP
    if vxlan.any():
        at, stop = cols["l4_offset"][vxlan], end[vxlan]
        valid = (_u8(buf, at, stop) & 0x08) != 0
        rows = np.flatnonzero(vxlan)[valid]
        inner_pos[rows] = (at + 8)[valid]
        inner_type[rows] = ETH_BRIDGED
    if gtp.any():
        at, stop = cols["l4_offset"][gtp], end[gtp]
        flags = _u8(buf, at, stop)
        valid = ((flags >> 5) == 1) & (_u8(buf, at + 1, stop) == 255)
        start = at + 8 + np.where((flags & 0x07) != 0, 4, 0)
        next_ext = np.where((flags & 0x04) != 0, _u8(buf, at + 11, stop), 0)
        for _ in range(MAX_NESTING):
            chained = next_ext != 0
            if not chained.any():
                break
            ext_len = _u8(buf, start, stop) * 4
            valid &= ~chained | (ext_len > 0)
            step = np.where(chained, np.maximum(ext_len, 4), 0)
            next_ext = np.where(chained, _u8(buf, start + step - 1, stop), 0)
            start = start + step
        rows = np.flatnonzero(gtp)[valid]
        inner_pos[rows] = start[valid]
        inner_type[rows] = ETH_BY_IP_NIBBLE
    if teredo.any():
        at, stop = cols["l4_offset"][teredo], end[teredo]
        indicator = _u16(buf, at, stop)
        auth_len = 4 + _u8(buf, at + 2, stop) + _u8(buf, at + 3, stop) + 9
        start = at + np.select([indicator == 0x0001, indicator == 0x0000], [auth_len, 8], 0)
        indicator = _u16(buf, start, stop)
        start = start + np.where(indicator == 0x0000, 8, 0)  # origin indication after authentication
        valid = ((_u8(buf, start, stop) >> 4) == 6) & (start + 40 <= stop)
        rows = np.flatnonzero(teredo)[valid]
        inner_pos[rows] = start[valid]
        inner_type[rows] = ETH_IPV6
    return np.flatnonzero(inner_pos >= 0), inner_pos, inner_type


def decode_frames(
    data: np.ndarray,
    offsets: np.ndarray,
    caplens: np.ndarray,
    wirelens: np.ndarray,
    linktypes: np.ndarray | np.integer | int,
    ts_ns: np.ndarray,
    *,
    tunnels: str = "outer",
    skips: Skips,
    keep_non_ip: bool = False,
    heads: np.ndarray | None = None,
) -> PacketBatch:
    """Decode captured frames (``data[offsets[i] : offsets[i] + caplens[i]]``) into a PacketBatch.

    ``heads`` (optional, see ``Frames.heads``): per frame a row of bytes ending with its first COMMON_WIDTH
    bytes, which a reader gathered anyway; the common frames are then decoded without another pass over memory.

    ``tunnels="inner"`` replaces the outer headers of GRE, VXLAN, GTP-U, IP-in-IP and Teredo packets
    by those of the packet they carry; frames that are not decodable IP are counted in ``skips``
    and dropped (kept with ``ip_version`` 0 when ``keep_non_ip``).
    """
    if tunnels not in ("outer", "inner"):
        raise ValueError(f"tunnels must be 'outer' or 'inner', not {tunnels!r}")
    data = np.asarray(data, np.uint8)
    buf = ByteView(data)
    offsets = np.asarray(offsets, np.int64)
    caplens = np.asarray(caplens, np.int64)
    n = offsets.shape[0]
    linktypes = np.broadcast_to(np.asarray(linktypes, np.int64), (n,))
    out = PacketBatch.empty(n, buf.data)
    out.ts_ns[:] = ts_ns
    out.wire_len[:] = wirelens
    reason = np.zeros(n, np.int8)
    partial = np.zeros(n, np.int8)
    etype = np.zeros(n, np.int64)
    for start in range(0, n, BLOCK_ROWS):
        block = slice(start, start + BLOCK_ROWS)
        frame = heads[block] if heads is not None else buf.header(offsets[block], COMMON_WIDTH, None)
        common = _decode_common(frame, offsets[block], caplens[block], linktypes[block], out, block, tunnels)
        if common is None:
            reason[block], partial[block], etype[block] = _decode_block(
                buf, offsets[block], caplens[block], linktypes[block], out, block, tunnels
            )
            continue
        rest = np.flatnonzero(~common)
        if rest.shape[0]:  # decoded on their own, then put in their places
            rows = rest + start
            others = PacketBatch.empty(rows.shape[0], buf.data)
            reason[rows], partial[rows], etype[rows] = _decode_block(
                buf, offsets[rows], caplens[rows], linktypes[rows], others, slice(None), tunnels
            )
            for name in _DECODED_COLUMNS:
                getattr(out, name)[rows] = getattr(others, name)
    _count(skips, reason, partial, linktypes, etype)
    if keep_non_ip:
        dropped = reason != OK
        for name in _NETWORK_COLUMNS:
            getattr(out, name)[dropped] = -1 if name == "l4_offset" else 0
        return out
    return out.take(reason == OK) if (reason != OK).any() else out


def _decode_common(
    frame: np.ndarray,
    offsets: np.ndarray,
    caplens: np.ndarray,
    linktypes: np.ndarray,
    out: PacketBatch,
    block: slice,
    tunnels: str,
) -> np.ndarray | None:
    """Decode the common frames of rows ``block`` of ``out`` from ``frame``, a matrix whose rows end with each
    frame's first COMMON_WIDTH bytes (bytes past a short frame are garbage: such rows fail the tests below);
    returns which rows it decoded, or None when no row can be common (then nothing was written).

    Common: Ethernet, then IPv4 without options or IPv6 without extension headers, unfragmented, then a
    TCP or UDP header that lies whole inside the IP packet and the capture (with ``tunnels="inner"``, UDP
    on a tunnel port is not common). For them this gives exactly what the layer-by-layer decoding gives,
    from one copy of each frame's first COMMON_WIDTH bytes instead of a gather per header. IPv4 columns
    are written whole: the other rows get garbage, which the IPv6 rows and the layer-by-layer decoding
    of the rest overwrite.
    """
    field = _field_reader(frame)
    etype = field(12, ">u2")
    ethernet = linktypes == LINK_ETHERNET
    ipv6 = ethernet & (etype == ETH_IPV6)
    if not (ethernet & ((etype == ETH_IPV4) | ipv6)).any():
        return None
    end = offsets + caplens
    ip_start = offsets + 14
    out.dst_mac[block] = field(0, ">u8") >> 16
    out.src_mac[block] = field(6, ">u8") >> 16
    out.etype[block] = etype

    total = field(16, ">u2").astype(np.int64)
    ip_end = np.where(total == 0, end, np.minimum(end, ip_start + np.maximum(total, 20)))  # 0: offloaded
    common = ethernet & (etype == ETH_IPV4) & (field(14, "u1") == 0x45) & ((field(20, ">u2") & 0x3FFF) == 0)
    common &= _common_transport(field, 34, ip_start + 20, ip_end, field(23, "u1"), out, block, tunnels)
    out.ip_version[block] = 4
    out.ip_len[block] = total
    out.ip_tos[block] = field(15, "u1")
    out.ip_ttl[block] = field(22, "u1")
    out.frag_id[block] = field(18, ">u2")
    for column, at in ((out.src_addr, 26), (out.dst_addr, 30)):
        words = column.view(np.uint32)  # IPv4-mapped: ten zero bytes (already), 0xFFFF, the address
        words[block, 2] = _MAPPED_PREFIX
        words[block, 3] = field(at, np.uint32)

    v6 = np.flatnonzero(ipv6 & ((field(14, "u1") >> 4) == 6))
    if v6.shape[0]:  # a minority: decoded from their own rows of the frame matrix, written by index
        rows = v6 + block.start
        frame6 = frame[v6]
        field6 = _field_reader(frame6)
        length = field6(18, ">u2").astype(np.int64)
        start6, end6 = ip_start[v6], end[v6]
        ip_end6 = np.where(length == 0, end6, np.minimum(end6, start6 + 40 + length))  # 0: jumbogram
        common[v6] = _common_transport(field6, 54, start6 + 40, ip_end6, field6(20, "u1"), out, rows, tunnels)
        out.ip_version[rows] = 6
        out.ip_len[rows] = length + 40
        out.ip_tos[rows] = (field6(14, ">u2") >> 4) & 0xFF  # the traffic class
        out.ip_ttl[rows] = field6(21, "u1")
        out.frag_id[rows] = 0
        _as_rows(out.src_addr)[rows] = field6(22, "V16")
        _as_rows(out.dst_addr)[rows] = field6(38, "V16")
    return common


def _field_reader(matrix: np.ndarray) -> Callable[[int, str | type], np.ndarray]:
    """``field(column, dtype)``: the value of that type starting at ``column`` of every row's frame bytes (the
    last COMMON_WIDTH columns of the contiguous ``matrix``), as a strided view."""
    rows, width = matrix.shape
    skip = width - COMMON_WIDTH

    def field(column: int, dtype: str | type) -> np.ndarray:
        return np.ndarray((rows,), dtype, matrix, skip + column, (width,))

    return field


def _common_transport(
    field: Callable[[int, str | type], np.ndarray],
    at: int,
    l4: np.ndarray,
    ip_end: np.ndarray,
    proto: np.ndarray,
    out: PacketBatch,
    rows: slice | np.ndarray,
    tunnels: str,
) -> np.ndarray:
    """TCP/UDP fields of common frames (transport header at column ``at`` of the frame matrix, at ``l4`` in
    the buffer) written to ``rows`` of ``out``; returns which rows hold a whole TCP or UDP header."""
    tcp = proto == PROTO_TCP
    src_port, dst_port = field(at, ">u2"), field(at + 2, ">u2")
    payload = l4 + np.where(tcp, np.maximum((field(at + 12, "u1") >> 4).astype(np.int64) * 4, 20), 8)
    whole = (tcp | (proto == PROTO_UDP)) & (payload <= ip_end)  # so every byte used was captured
    if tunnels == "inner":
        whole &= tcp | ~(_any_of(src_port, _TUNNEL_PORTS) | _any_of(dst_port, _TUNNEL_PORTS))
    out.proto[rows] = proto
    out.src_port[rows] = src_port
    out.dst_port[rows] = dst_port
    out.tcp_flags[rows] = np.multiply(field(at + 13, "u1"), tcp)
    out.tcp_seq[rows] = np.multiply(field(at + 4, ">u4"), tcp)
    out.tcp_ack[rows] = np.multiply(field(at + 8, ">u4"), tcp)
    out.l4_offset[rows] = payload
    out.l4_len[rows] = ip_end - payload
    return whole


def _decode_block(
    buf: ByteView,
    offsets: np.ndarray,
    caplens: np.ndarray,
    linktypes: np.ndarray,
    out: PacketBatch,
    block: slice,
    tunnels: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode rows ``block`` of ``out`` in place; returns their (reason, partial, link ethertype) codes."""
    n = offsets.shape[0]
    end = offsets + caplens
    pos, etype, reason = _link_layer(buf, offsets, caplens, linktypes, out.dst_mac[block], out.src_mac[block])
    link_etype = etype.copy()
    vlan = np.zeros(n, np.int64)
    unwrap_reason = _unwrap(buf, pos, end, etype, vlan)
    out.vlan_id[block] = vlan
    reason = np.where(reason == OK, unwrap_reason, reason)
    columns = {name: getattr(out, name)[block] for name, _, _ in COLUMNS if name not in _LINK_COLUMNS}
    net = _decode_network(buf, pos, end, etype, columns)  # straight into the output batch's rows
    reason = np.where(reason == OK, net.reason, reason)
    partial = net.partial

    if tunnels == "inner":
        rows = np.flatnonzero(reason == OK)
        current = _narrow(net, rows)
        for _ in range(MAX_TUNNELS):
            carried, inner_pos, inner_type = _tunnel_payloads(buf, current, current.payload_end)
            if carried.shape[0] == 0:
                break
            stop = current.payload_end[carried]
            at = inner_pos[carried]
            kind = inner_type[carried]
            layer_reason = _unwrap(buf, at, stop, kind, None)
            inner = _decode_network(buf, at, stop, kind)
            good = (layer_reason == OK) & (inner.reason == OK)
            partial[rows[carried[~good]]] = 2
            target = rows[carried[good]]
            for name, values in inner.columns.items():
                getattr(out, name)[block][target] = values[good]
                current.columns[name][carried[good]] = values[good]
            partial[target] = inner.partial[good]
            current.payload_pos[carried[good]] = inner.payload_pos[good]
            current.payload_end[carried[good]] = inner.payload_end[good]
            rows, current = rows[carried[good]], _narrow(current, carried[good])
    return reason, partial, link_etype


def _narrow(net: _Network, keep: np.ndarray) -> _Network:
    """The rows ``keep`` of ``net`` (only decapsulated rows can hold a further tunnel)."""
    return _Network(
        {name: values[keep] for name, values in net.columns.items()},
        net.reason[keep],
        net.partial[keep],
        net.payload_pos[keep],
        net.payload_end[keep],
    )


def _count(skips: Skips, reason: np.ndarray, partial: np.ndarray, linktypes: np.ndarray, etype: np.ndarray) -> None:
    counts = np.bincount(reason, minlength=len(REASONS) + 1)
    for code, text in REASONS.items():
        if counts[code]:
            first = int(np.flatnonzero(reason == code)[0])
            example = {1: f"link type {linktypes[first]}", 3: f"ethertype 0x{int(etype[first]) & 0xFFFF:04x}"}.get(code)
            skips.add(text, int(counts[code]), example)
    kept = np.bincount(partial[reason == OK], minlength=len(PARTIAL_REASONS) + 1)
    for code, text in PARTIAL_REASONS.items():
        skips.add(text, int(kept[code]))
