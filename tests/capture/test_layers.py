"""The vectorised layer decoder on hand-built frames: every link type, encapsulation, tunnel and damage case."""

from __future__ import annotations

import ipaddress
import struct

import numpy as np
import pytest
from tests.capture.frame_builders import MAC_A, MAC_B, ether, fragment_header, icmp, ipv4, ipv6, tcp, udp

from flowscope.capture import layers
from flowscope.capture.layers import decode_frames
from flowscope.capture.packets import COLUMNS, PacketBatch
from flowscope.diagnostics import Skips


def decode(frames: list[bytes], linktypes: int | list[int] = 1, **kwargs) -> tuple[PacketBatch, Skips]:
    data = np.frombuffer(b"".join(frames), np.uint8)
    lengths = np.array([len(f) for f in frames], np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    skips = Skips(unit="packets")
    batch = decode_frames(
        data,
        offsets,
        kwargs.pop("caplens", lengths),
        lengths,
        np.asarray(linktypes),
        np.arange(len(frames), dtype=np.int64),
        skips=skips,
        **kwargs,
    )
    return batch, skips


def text(matrix_row: np.ndarray) -> str:
    raw = bytes(matrix_row)
    if raw[:12] == bytes(10) + b"\xff\xff":
        return str(ipaddress.IPv4Address(raw[12:]))
    return str(ipaddress.IPv6Address(raw))


def five_tuple(batch: PacketBatch, row: int = 0) -> tuple[str, str, int, int, int]:
    return (
        text(batch.src_addr[row]),
        text(batch.dst_addr[row]),
        int(batch.proto[row]),
        int(batch.src_port[row]),
        int(batch.dst_port[row]),
    )


TCP_PACKET = ipv4(tcp(1234, 80, flags=0x12, payload=b"hello"), 6, tos=0x28, ttl=9)


def test_ethernet_ipv4_tcp_fields_and_payload() -> None:
    batch, skips = decode([ether(TCP_PACKET)])
    assert five_tuple(batch) == ("10.0.0.1", "10.0.0.2", 6, 1234, 80)
    assert batch.tcp_flags[0] == 0x12 and batch.ip_tos[0] == 0x28 and batch.ip_ttl[0] == 9
    assert batch.ip_version[0] == 4 and batch.ip_len[0] == len(TCP_PACKET) and batch.etype[0] == 0x0800
    assert batch.src_mac[0] == int.from_bytes(MAC_A, "big") and batch.dst_mac[0] == int.from_bytes(MAC_B, "big")
    assert batch.payload(0) == b"hello" and batch.l4_len[0] == 5
    assert skips.total == 0


def test_ipv4_options_shift_the_transport_header() -> None:
    packet = ipv4(udp(53, 5353, b"x"), 17, options=b"\x94\x04\x00\x00" * 2)
    batch, _ = decode([ether(packet)])
    assert five_tuple(batch) == ("10.0.0.1", "10.0.0.2", 17, 53, 5353)
    assert batch.payload(0) == b"x"


def test_ethernet_padding_is_not_payload() -> None:
    frame = ether(ipv4(udp(1, 2, b"ab"), 17)) + bytes(20)
    batch, _ = decode([frame])
    assert batch.payload(0) == b"ab"


def test_zero_ip_length_runs_to_the_frame_end() -> None:
    """Linux writes total length 0 for offloaded packets above 64 KiB (and IPv6 jumbograms carry 0 too)."""
    v4 = bytearray(ether(ipv4(tcp(1, 2, payload=b"data"), 6)))
    v4[14 + 2 : 14 + 4] = b"\0\0"
    v6 = bytearray(ether(ipv6(udp(3, 4, b"more"), 17), 0x86DD))
    v6[14 + 4 : 14 + 6] = b"\0\0"
    batch, _ = decode([bytes(v4), bytes(v6)])
    assert batch.src_port.tolist() == [1, 3]
    assert [batch.payload(r) for r in range(2)] == [b"data", b"more"]


def test_vlan_qinq_keeps_outermost_id() -> None:
    frames = [
        ether(TCP_PACKET, vlans=[(0x8100, 42)]),
        ether(TCP_PACKET, vlans=[(0x88A8, 200), (0x8100, 2001)]),
        ether(TCP_PACKET, vlans=[(0x9100, 7), (0x8100, 8), (0x8100, 9)]),
    ]
    batch, _ = decode(frames)
    assert batch.vlan_id.tolist() == [42, 200, 7]
    assert all(five_tuple(batch, row)[3] == 1234 for row in range(3))


def test_mpls_stack_and_eompls() -> None:
    labels = struct.pack("!II", (16 << 12) | (0 << 8) | 64, (17 << 12) | (1 << 8) | 64)
    six = ipv6(udp(1, 2), 17)
    eompls = struct.pack("!I", (18 << 12) | (1 << 8) | 64) + bytes(4) + ether(TCP_PACKET)
    bad = struct.pack("!I", (18 << 12) | (1 << 8) | 64) + b"\x90" + bytes(30)
    batch, skips = decode(
        [ether(labels + TCP_PACKET, 0x8847), ether(labels + six, 0x8847), ether(eompls, 0x8847), ether(bad, 0x8847)]
    )
    assert [five_tuple(batch, r)[2] for r in range(3)] == [6, 17, 6]
    assert batch.ip_version.tolist() == [4, 6, 4]
    assert skips.counts["MPLS payload is neither IPv4, IPv6 nor Ethernet"] == 1


def test_pppoe_session() -> None:
    session = struct.pack("!BBHH", 0x11, 0, 0x1234, len(TCP_PACKET) + 2) + b"\x00\x21" + TCP_PACKET
    lcp = struct.pack("!BBHH", 0x11, 0, 0x1234, 6) + b"\xc0\x21" + bytes(4)
    batch, skips = decode([ether(session, 0x8864), ether(lcp, 0x8864)])
    assert len(batch) == 1 and five_tuple(batch)[3] == 1234
    assert skips.counts["not IP (other ethertype or PPP protocol)"] == 1


def test_ipv6_extension_headers_and_fragment() -> None:
    hop_by_hop = (0, bytes(6))
    destination = (60, bytes(14))
    first = ipv6(udp(500, 4500, b"p"), 17, extensions=[hop_by_hop, destination, fragment_header(0, True, 99)])
    later = ipv6(b"rest-of-datagram", 17, extensions=[fragment_header(10, False, 99)])
    batch, _ = decode([ether(first, 0x86DD), ether(later, 0x86DD)])
    assert five_tuple(batch, 0) == ("2001:db8::1", "2001:db8::2", 17, 500, 4500)
    assert batch.more_fragments.tolist() == [True, False]
    assert batch.frag_id.tolist() == [99, 99]
    assert batch.frag_offset.tolist() == [0, 10]
    assert five_tuple(batch, 1)[2:] == (17, 0, 0) and batch.l4_offset[1] == -1


def test_ipv4_later_fragment_has_no_ports() -> None:
    first = ipv4(udp(53, 53, bytes(8)), 17, ident=5, more_fragments=True)
    later = ipv4(bytes(16), 17, ident=5, frag_offset=2)
    batch, _ = decode([ether(first), ether(later)])
    assert batch.frag_offset.tolist() == [0, 2] and batch.more_fragments.tolist() == [True, False]
    assert batch.src_port.tolist() == [53, 0] and batch.frag_id.tolist() == [5, 5]


def test_icmp_and_icmpv6_and_sctp() -> None:
    sctp = struct.pack("!HHII", 2905, 2906, 0, 0) + bytes(4)
    frames = [ether(ipv4(icmp(8, 0), 1)), ether(ipv6(icmp(135, 0), 58), 0x86DD), ether(ipv4(sctp, 132))]
    batch, _ = decode(frames)
    assert batch.icmp_type.tolist()[:2] == [8, 135] and batch.src_port.tolist()[:2] == [0, 0]
    assert five_tuple(batch, 2)[2:] == (132, 2905, 2906)


def test_link_types() -> None:
    sll = struct.pack("!HHH8sH", 0, 1, 6, MAC_A + b"\0\0", 0x0800) + TCP_PACKET
    sll2 = struct.pack("!HHIHBB8s", 0x0800, 0, 2, 1, 0, 6, MAC_A + b"\0\0") + TCP_PACKET
    null_le = struct.pack("<I", 2) + TCP_PACKET
    null_v6 = struct.pack("<I", 30) + ipv6(udp(1, 2), 17)
    loop_be = struct.pack(">I", 2) + TCP_PACKET
    ppp = b"\xff\x03\x00\x21" + TCP_PACKET
    ppp_compressed = b"\x21" + TCP_PACKET
    cisco_hdlc = b"\x0f\x00\x08\x00" + TCP_PACKET
    frames = [sll, sll2, null_le, null_v6, loop_be, TCP_PACKET, TCP_PACKET, ipv6(udp(1, 2), 17), ppp, ppp_compressed]
    frames.append(cisco_hdlc)
    linktypes = [113, 276, 0, 0, 108, 101, 228, 229, 9, 9, 104]
    batch, skips = decode(frames, linktypes)
    assert len(batch) == len(frames) and skips.total == 0
    assert batch.proto.tolist() == [6, 6, 6, 17, 6, 6, 6, 17, 6, 6, 6]
    assert batch.ip_version.tolist() == [4, 4, 4, 6, 4, 4, 4, 6, 4, 4, 4]


def test_unknown_link_type_and_non_ip_are_counted() -> None:
    arp = ether(bytes(28), 0x0806)
    batch, skips = decode([TCP_PACKET, arp], [147, 1])
    assert len(batch) == 0
    assert skips.counts == {"unknown link type": 1, "not IP (other ethertype or PPP protocol)": 1}
    assert skips.examples["unknown link type"] == "link type 147"
    kept, _ = decode([arp], keep_non_ip=True)
    assert kept.ip_version.tolist() == [0] and kept.wire_len.tolist() == [len(arp)]


def test_snaplen_cut_frames_keep_what_was_captured() -> None:
    frame = ether(TCP_PACKET)
    caps = np.array([14 + 20 + 2, 14 + 10, 5])  # half a TCP header, half an IPv4 header, half an Ethernet header
    batch, skips = decode([frame[:c] for c in caps], caplens=caps)
    assert len(batch) == 1 and batch.src_port[0] == 0 and batch.ip_len[0] == len(TCP_PACKET)
    assert text(batch.dst_addr[0]) == "10.0.0.2"
    assert skips.counts["transport header cut by snaplen (packet kept, ports/flags missing)"] == 1
    assert skips.counts["IPv4 header cut short (snaplen or truncated record)"] == 1
    assert skips.counts["frame shorter than its link-layer header"] == 1


def test_garbage_is_counted_not_raised() -> None:
    rng = np.random.default_rng(3)
    frames = [rng.integers(0, 256, size, dtype=np.uint8).tobytes() for size in rng.integers(0, 120, 500)]
    batch, skips = decode(frames, [1, 101, 9, 113, 0] * 100)
    assert len(batch) + sum(skips.counts[r] for r in skips.counts if "kept" not in r) == 500


GRE_KEY = struct.pack("!HHI", 0x2000, 0x0800, 77)


@pytest.mark.parametrize(
    ("outer", "inner_tuple"),
    [
        (ipv4(TCP_PACKET, 4, "192.0.2.1", "192.0.2.2"), ("10.0.0.1", "10.0.0.2", 6, 1234, 80)),
        (ipv4(ipv6(udp(7, 8), 17), 41, "192.0.2.1", "192.0.2.2"), ("2001:db8::1", "2001:db8::2", 17, 7, 8)),
        (ipv4(GRE_KEY + TCP_PACKET, 47, "192.0.2.1", "192.0.2.2"), ("10.0.0.1", "10.0.0.2", 6, 1234, 80)),
        (
            ipv4(udp(40000, 4789, struct.pack("!II", 0x08000000, 100 << 8) + ether(TCP_PACKET)), 17, "192.0.2.1"),
            ("10.0.0.1", "10.0.0.2", 6, 1234, 80),
        ),
        (
            ipv4(udp(2152, 2152, struct.pack("!BBHI", 0x30, 255, len(TCP_PACKET), 1) + TCP_PACKET), 17, "192.0.2.1"),
            ("10.0.0.1", "10.0.0.2", 6, 1234, 80),
        ),
        (  # GTP-U with a sequence number and one extension header (PDU session container)
            ipv4(
                udp(
                    2152, 2152, struct.pack("!BBHIHBB", 0x34, 255, 0, 1, 0, 0, 0x85) + b"\x01\x10\x09\x00" + TCP_PACKET
                ),
                17,
                "192.0.2.1",
            ),
            ("10.0.0.1", "10.0.0.2", 6, 1234, 80),
        ),
        (
            ipv4(udp(3544, 51000, bytes([0, 0]) + bytes(6) + ipv6(udp(9, 10), 17)), 17, "192.0.2.1"),
            ("2001:db8::1", "2001:db8::2", 17, 9, 10),
        ),
        (ipv6(TCP_PACKET, 4, "2001:db8::a", "2001:db8::b"), ("10.0.0.1", "10.0.0.2", 6, 1234, 80)),
    ],
    ids=["ipip", "6in4", "gre-key", "vxlan", "gtp-u", "gtp-u-ext", "teredo-origin", "4in6"],
)
def test_tunnels_inner_and_outer(outer: bytes, inner_tuple: tuple) -> None:
    etype = 0x0800 if outer[0] >> 4 == 4 else 0x86DD
    frame = ether(outer, etype)
    inner, skips = decode([frame], tunnels="inner")
    assert five_tuple(inner) == inner_tuple and skips.total == 0
    plain, _ = decode([frame], tunnels="outer")
    assert five_tuple(plain)[0] in ("192.0.2.1", "2001:db8::a")
    assert inner.wire_len[0] == plain.wire_len[0] == len(frame)


def test_undecodable_tunnel_payload_keeps_outer_headers() -> None:
    frame = ether(ipv4(GRE_KEY + b"\x99" * 30, 47, "192.0.2.1", "192.0.2.2"))
    batch, skips = decode([frame], tunnels="inner")
    assert five_tuple(batch)[:3] == ("192.0.2.1", "192.0.2.2", 47)
    assert skips.counts["tunnel payload not decodable (packet kept with outer headers)"] == 1


def test_nested_tunnels() -> None:
    vxlan = udp(40000, 4789, struct.pack("!II", 0x08000000, 1 << 8) + ether(ipv4(TCP_PACKET, 4, "172.16.0.1")))
    frame = ether(ipv4(GRE_KEY + ipv4(vxlan, 17, "192.168.0.1"), 47, "192.0.2.1"))
    batch, _ = decode([frame], tunnels="inner")
    assert five_tuple(batch) == ("10.0.0.1", "10.0.0.2", 6, 1234, 80)


def test_bad_tunnel_mode_is_rejected() -> None:
    with pytest.raises(ValueError):
        decode([ether(TCP_PACKET)], tunnels="both")


def test_take_and_concat_shift_payload_offsets() -> None:
    first, _ = decode([ether(ipv4(udp(1, 2, b"one"), 17)), ether(ipv4(udp(3, 4, b"two"), 17))])
    second, _ = decode([ether(ipv4(udp(5, 6, b"three"), 17))])
    joined = PacketBatch.concat([first.take(np.array([1])), second])
    assert [joined.payload(r) for r in range(len(joined))] == [b"two", b"three"]


def mutated_frames(count: int, seed: int) -> tuple[list[bytes], np.ndarray]:
    """Common and uncommon frames, many with header bytes overwritten or cut by a snap length."""
    rng = np.random.default_rng(seed)
    vxlan = udp(40000, 4789, struct.pack("!II", 0x08000000, 1 << 8) + ether(TCP_PACKET))
    bases = [
        ether(TCP_PACKET),
        ether(ipv4(udp(5353, 53, b"q" * 30), 17)),
        ether(ipv4(tcp(1, 2, options=b"\x01" * 12, payload=b"x" * 9), 6)),
        ether(ipv6(tcp(3, 4, payload=b"y" * 20), 6), 0x86DD),
        ether(ipv6(udp(5, 6), 17), 0x86DD),
        ether(ipv4(TCP_PACKET, 6, options=b"\x01" * 4)),
        ether(ipv4(TCP_PACKET, 6, more_fragments=True)),
        ether(ipv4(b"z" * 16, 6, frag_offset=3)),
        ether(ipv4(icmp(8, 0, b"p"), 1)),
        ether(ipv6(udp(7, 8), 17, extensions=[fragment_header(0, True, 9)]), 0x86DD),
        ether(ipv4(vxlan, 17, "192.0.2.1")),
        ether(TCP_PACKET, vlans=[(0x8100, 5)]),
        ether(TCP_PACKET) + bytes(12),  # Ethernet padding after the IP packet
    ]
    frames, caplens = [], []
    for _ in range(count):
        frame = bytearray(bases[int(rng.integers(len(bases)))])
        for _ in range(int(rng.integers(0, 3))):
            frame[int(rng.integers(0, min(len(frame), 70)))] = int(rng.integers(0, 256))
        frames.append(bytes(frame))
        caplens.append(len(frame) if rng.random() < 0.7 else int(rng.integers(0, len(frame) + 1)))
    return frames, np.array(caplens, np.int64)


@pytest.mark.parametrize("tunnels", ["outer", "inner"])
def test_common_frames_decode_as_layer_by_layer(monkeypatch: pytest.MonkeyPatch, tunnels: str) -> None:
    """The one-gather path for common frames gives exactly what the layer-by-layer decoding gives."""
    frames, caplens = mutated_frames(4000, seed=11)
    fast, fast_skips = decode(frames, caplens=caplens, tunnels=tunnels, keep_non_ip=True)
    monkeypatch.setattr(layers, "_decode_common", lambda *args: None)
    slow, slow_skips = decode(frames, caplens=caplens, tunnels=tunnels, keep_non_ip=True)
    for name, _, _ in COLUMNS:
        assert np.array_equal(getattr(fast, name), getattr(slow, name)), name
    assert fast_skips.counts == slow_skips.counts
    assert (fast.ip_version != 0).sum() > 2000  # most frames stay decodable
