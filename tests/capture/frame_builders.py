"""Building frames and capture files byte by byte, so reader and decoder tests state exactly what they feed in."""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Sequence

MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")


def ether(payload: bytes, etype: int = 0x0800, vlans: Sequence[tuple[int, int]] = ()) -> bytes:
    """Ethernet II (dst MAC_B, src MAC_A) with optional (tpid, vlan id) tags, outermost first."""
    tags = b"".join(struct.pack("!HH", tpid, vid) for tpid, vid in vlans)
    return MAC_B + MAC_A + tags + struct.pack("!H", etype) + payload


def ipv4(
    payload: bytes,
    proto: int,
    src: str = "10.0.0.1",
    dst: str = "10.0.0.2",
    *,
    options: bytes = b"",
    ident: int = 7,
    frag_offset: int = 0,
    more_fragments: bool = False,
    tos: int = 0,
    ttl: int = 64,
) -> bytes:
    ihl = 5 + len(options) // 4
    flags = (0x2000 if more_fragments else 0) | frag_offset
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x40 | ihl,
        tos,
        ihl * 4 + len(payload),
        ident,
        flags,
        ttl,
        proto,
        0,
        ipaddress.IPv4Address(src).packed,
        ipaddress.IPv4Address(dst).packed,
    )
    return header + options + payload


def ipv6(
    payload: bytes,
    next_header: int,
    src: str = "2001:db8::1",
    dst: str = "2001:db8::2",
    *,
    extensions: Sequence[tuple[int, bytes]] = (),
    traffic_class: int = 0,
    hop_limit: int = 64,
) -> bytes:
    """IPv6 with extension headers given as (their type, their body after the next/length bytes)."""
    chain = b""
    types = [kind for kind, _ in extensions] + [next_header]
    for (kind, body), following in zip(extensions, types[1:], strict=True):
        if kind == 44:
            chain += struct.pack("!BB", following, 0) + body
        else:
            chain += struct.pack("!BB", following, (len(body) + 2) // 8 - 1) + body
    word = (6 << 28) | (traffic_class << 20)
    header = struct.pack(
        "!IHBB16s16s",
        word,
        len(chain) + len(payload),
        types[0],
        hop_limit,
        ipaddress.IPv6Address(src).packed,
        ipaddress.IPv6Address(dst).packed,
    )
    return header + chain + payload


def fragment_header(offset_units: int, more: bool, ident: int) -> tuple[int, bytes]:
    return 44, struct.pack("!HI", (offset_units << 3) | int(more), ident)


def tcp(sport: int, dport: int, flags: int = 0x18, payload: bytes = b"", options: bytes = b"") -> bytes:
    offset = (20 + len(options)) // 4
    return struct.pack("!HHIIBBHHH", sport, dport, 1, 0, offset << 4, flags, 1024, 0, 0) + options + payload


def udp(sport: int, dport: int, payload: bytes = b"") -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def icmp(kind: int, code: int, payload: bytes = b"") -> bytes:
    return struct.pack("!BBHI", kind, code, 0, 0) + payload


def pcap_file(
    frames: Sequence[bytes],
    *,
    linktype: int = 1,
    order: str = "<",
    nanosecond: bool = False,
    start_s: int = 1_700_000_000,
    snaplen: int = 65535,
    wire_lens: Sequence[int] | None = None,
) -> bytes:
    """A classic pcap; packet i is stamped start_s + i seconds + 250 ms."""
    magic = 0xA1B23C4D if nanosecond else 0xA1B2C3D4
    out = [struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)]
    fraction = 250_000_000 if nanosecond else 250_000
    for index, frame in enumerate(frames):
        wire = len(frame) if wire_lens is None else wire_lens[index]
        out.append(struct.pack(order + "IIII", start_s + index, fraction, len(frame), wire) + frame)
    return b"".join(out)


def _pad(body: bytes) -> bytes:
    return body + bytes(-len(body) % 4)


def pcapng_block(kind: int, body: bytes, order: str = "<") -> bytes:
    body = _pad(body)
    length = 12 + len(body)
    return struct.pack(order + "II", kind, length) + body + struct.pack(order + "I", length)


def pcapng_option(code: int, value: bytes, order: str = "<") -> bytes:
    return struct.pack(order + "HH", code, len(value)) + _pad(value)


def pcapng_shb(order: str = "<") -> bytes:
    return pcapng_block(0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1), order)


def pcapng_idb(linktype: int = 1, snaplen: int = 0, order: str = "<", options: bytes = b"") -> bytes:
    if options:
        options += pcapng_option(0, b"", order)
    return pcapng_block(1, struct.pack(order + "HHI", linktype, 0, snaplen) + options, order)


def pcapng_epb(interface: int, ticks: int, frame: bytes, order: str = "<", wire_len: int | None = None) -> bytes:
    wire = len(frame) if wire_len is None else wire_len
    header = struct.pack(order + "IIIII", interface, ticks >> 32, ticks & 0xFFFFFFFF, len(frame), wire)
    return pcapng_block(6, header + frame, order)


def pcapng_spb(frame: bytes, order: str = "<", wire_len: int | None = None) -> bytes:
    wire = len(frame) if wire_len is None else wire_len
    return pcapng_block(3, struct.pack(order + "I", wire) + frame, order)


def pcapng_opb(interface: int, ticks: int, frame: bytes, order: str = "<") -> bytes:
    """The obsolete Packet Block: a 16-bit interface id and a 16-bit drop count instead of a 32-bit id."""
    header = struct.pack(order + "HHIIII", interface, 3, ticks >> 32, ticks & 0xFFFFFFFF, len(frame), len(frame))
    return pcapng_block(2, header + frame, order)
