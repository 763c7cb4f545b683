"""Building packet batches by hand and a plain sequential meter to check the vectorised one against."""

from __future__ import annotations

import ipaddress

import numpy as np

from flowscope.capture.packets import PacketBatch

NS = 1_000_000_000


def address(text: str) -> bytes:
    value = ipaddress.ip_address(text)
    return bytes(10) + b"\xff\xff" + value.packed if value.version == 4 else value.packed


def make_batch(packets: list[dict]) -> PacketBatch:
    """Packets as dicts (src, dst, sport, dport, proto, ts, size, flags, ...) -> a PacketBatch."""
    batch = PacketBatch.empty(len(packets))
    for row, packet in enumerate(packets):
        batch.ts_ns[row] = round(packet["ts"] * NS)
        batch.src_addr[row] = np.frombuffer(address(packet["src"]), np.uint8)
        batch.dst_addr[row] = np.frombuffer(address(packet["dst"]), np.uint8)
        batch.ip_version[row] = 4 if packet["src"].count(".") == 3 else 6
        batch.etype[row] = 0x0800 if batch.ip_version[row] == 4 else 0x86DD
        batch.proto[row] = packet.get("proto", 6)
        batch.src_port[row] = packet.get("sport", 0)
        batch.dst_port[row] = packet.get("dport", 0)
        batch.ip_len[row] = packet.get("size", 100)
        batch.wire_len[row] = packet.get("size", 100) + 14
        batch.tcp_flags[row] = packet.get("flags", 0)
        batch.vlan_id[row] = packet.get("vlan", 0)
        batch.icmp_type[row] = packet.get("icmp_type", 0)
        batch.icmp_code[row] = packet.get("icmp_code", 0)
        batch.frag_id[row] = packet.get("frag_id", 0)
        batch.frag_offset[row] = packet.get("frag_offset", 0)
        batch.more_fragments[row] = packet.get("more_fragments", False)
    return batch


ICMP_QUERY_OF = {1: {0: 8, 14: 13, 16: 15, 18: 17}, 58: {129: 128, 140: 139}}
"""Reply type -> the query type it answers, per protocol (the exchanges a biflow keeps together)."""


def key_ports(packet: dict) -> tuple[int, int]:
    """The ports a packet is keyed by: ICMP type and code as the destination "port" (type * 256 + code),
    a reply's as its query's from the source side."""
    if packet.get("proto", 6) not in ICMP_QUERY_OF:
        return packet.get("sport", 0), packet.get("dport", 0)
    kind, code = packet.get("icmp_type", 0), packet.get("icmp_code", 0)
    query = ICMP_QUERY_OF[packet["proto"]].get(kind)
    return ((query << 8 | code), 0) if query is not None else (0, kind << 8 | code)


def reference_flows(packets: list[dict], *, idle: float, active: float, uniflow: bool = False) -> list[tuple]:
    """A straightforward packet-at-a-time biflow (or uniflow) meter (nfpcapd/NFStream timeout rules).

    Returns sorted (src, dst, sport, dport, proto, start, packets, bytes, packets_rev, bytes_rev).
    """
    cache: dict[tuple, dict] = {}
    done: list[dict] = []
    for p in sorted(packets, key=lambda p: p["ts"]):
        sport, dport = key_ports(p)
        forward = (address(p["src"]), sport) <= (address(p["dst"]), dport)
        ends = sorted([(p["src"], sport), (p["dst"], dport)], key=lambda e: (address(e[0]), e[1]))
        if uniflow:
            ends, forward = [(p["src"], sport), (p["dst"], dport)], True
        key = (*ends[0], *ends[1], p.get("proto", 6), p.get("vlan", 0))
        flow = cache.get(key)
        if flow and (p["ts"] - flow["last"] >= idle or p["ts"] - flow["start"] >= active):
            done.append(cache.pop(key))
            flow = None
        if flow is None:
            flow = cache[key] = {"src": p["src"], "dst": p["dst"], "sport": p.get("sport", 0),
                                 "dport": p.get("dport", 0), "proto": p.get("proto", 6), "start": p["ts"],
                                 "last": p["ts"], "fwd_is_a": forward, "pa": 0, "ba": 0, "pb": 0, "bb": 0}  # fmt: skip
        flow["last"] = p["ts"]
        side = "a" if forward == flow["fwd_is_a"] else "b"
        flow["p" + side] += 1
        flow["b" + side] += p.get("size", 100)
    done.extend(cache.values())
    return sorted(
        (
            f["src"],
            f["dst"],
            f["sport"],
            f["dport"],
            f["proto"],
            round(f["start"] * NS),
            f["pa"],
            f["ba"],
            f["pb"],
            f["bb"],
        )
        for f in done
    )


def table_flows(table) -> list[tuple]:
    """The same tuple shape from a flow table."""
    from flowscope.addresses import format_text

    rows = {name: table.column(name).to_pylist() for name in ("src_port", "dst_port", "proto", "packets", "bytes",
                                                              "packets_rev", "bytes_rev")}  # fmt: skip
    src = format_text(table.column("src_addr")).to_pylist()
    dst = format_text(table.column("dst_addr")).to_pylist()
    starts = table.column("time_flow_start").cast("int64").to_pylist()
    return sorted(
        zip(src, dst, rows["src_port"], rows["dst_port"], rows["proto"], starts, rows["packets"], rows["bytes"],
            rows["packets_rev"], rows["bytes_rev"], strict=True)
    )  # fmt: skip
