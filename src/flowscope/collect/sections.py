"""Packet sections in IPFIX records (RFC 7133): the leading bytes of a sampled packet, decoded like a capture.

Packet-sampling exporters (switches, Juniper, SRv6 routers) send ``dataLinkFrameSection``
(an Ethernet frame) or ``ipHeaderPacketSection`` (an IP packet) instead of flow keys; the
flow keys are then whatever the capture decoder finds in those bytes, all records at once.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from flowscope import addresses
from flowscope.capture.layers import LINK_ETHERNET, LINK_RAW, decode_frames
from flowscope.collect.records import Records
from flowscope.diagnostics import Skips

SECTIONS = (((0, 315), LINK_ETHERNET), ((0, 313), LINK_RAW))  # dataLinkFrameSection, ipHeaderPacketSection
FRAME_SIZE = (0, 312)  # dataLinkFrameSize: the sampled frame's length on the wire

_HEADER_COLUMNS = ("proto", "src_port", "dst_port", "ip_tos", "ip_ttl", "tcp_flags", "icmp_type", "icmp_code")
_NUMPY_TYPES = {"tcp_flags": np.uint16}


def section_columns(records: Records, skips: Skips, tunnels: str = "outer") -> dict[str, pa.Array]:
    """Flow columns decoded from the first packet section the template carries (empty if none); ``tunnels``
    as in ``decode_frames`` ("inner" reads through GRE, VXLAN, IP-in-IP, SRv6... to the carried packet)."""
    for key, linktype in SECTIONS:
        if records.index_of(key) is None:
            continue
        buffer, starts, lengths = records.section(key)
        size = records.unsigned(FRAME_SIZE)
        wire = size if size is not None else lengths
        frame_skips = Skips(unit="packet sections")
        packets = decode_frames(
            buffer,
            starts,
            lengths,
            wire,
            linktype,
            np.zeros(len(records), np.int64),
            tunnels=tunnels,
            skips=frame_skips,
            keep_non_ip=True,
        )
        for reason, count in frame_skips.counts.items():
            skips.add(f"IPFIX packet section: {reason} (flow kept)", count, frame_skips.examples.get(reason))
        not_ip = packets.ip_version == 0
        out = {
            "src_addr": addresses.from_ipv6_bytes(packets.src_addr, ~not_ip),
            "dst_addr": addresses.from_ipv6_bytes(packets.dst_addr, ~not_ip),
            "etype": pa.array(packets.etype, mask=packets.etype == 0),
            # IP bytes, as flow exporters count them; the frame size when the section is no IP
            "bytes": pa.array(np.where(not_ip, np.asarray(wire, np.uint64), packets.ip_len).astype(np.uint64)),
            "packets": pa.array(np.ones(len(records), np.uint64)),
        }
        for name in _HEADER_COLUMNS:
            values = getattr(packets, name)
            out[name] = pa.array(values.astype(_NUMPY_TYPES.get(name, values.dtype)), mask=not_ip)
        if linktype == LINK_ETHERNET:
            out["src_mac"] = pa.array(packets.src_mac)
            out["dst_mac"] = pa.array(packets.dst_mac)
            out["vlan_id"] = pa.array(packets.vlan_id)
        return out
    return {}
