"""The packet batch: decoded packets as a struct of numpy arrays, one row per packet.

Capture readers and sampled-header decoders produce it; metering and export decoders consume it.
Keeping packets as equal-length arrays (never one Python object per packet) is what lets every
later stage work a whole batch at a time.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

# (field name, dtype, trailing shape) for every per-packet column, in interface order.
COLUMNS: tuple[tuple[str, type, tuple[int, ...]], ...] = (
    ("ts_ns", np.int64, ()),
    ("wire_len", np.uint32, ()),
    ("ip_len", np.uint32, ()),
    ("ip_version", np.uint8, ()),
    ("src_addr", np.uint8, (16,)),
    ("dst_addr", np.uint8, (16,)),
    ("proto", np.uint8, ()),
    ("src_port", np.uint16, ()),
    ("dst_port", np.uint16, ()),
    ("icmp_type", np.uint8, ()),
    ("icmp_code", np.uint8, ()),
    ("tcp_flags", np.uint8, ()),
    ("tcp_seq", np.uint32, ()),
    ("tcp_ack", np.uint32, ()),
    ("ip_tos", np.uint8, ()),
    ("ip_ttl", np.uint8, ()),
    ("vlan_id", np.uint16, ()),
    ("etype", np.uint16, ()),
    ("src_mac", np.uint64, ()),
    ("dst_mac", np.uint64, ()),
    ("frag_id", np.uint32, ()),
    ("frag_offset", np.uint16, ()),
    ("more_fragments", np.bool_, ()),
    ("l4_offset", np.int64, ()),
    ("l4_len", np.int32, ()),
)


@dataclass
class PacketBatch:
    """Decoded packets as equal-length numpy arrays (struct of arrays), one row per packet."""

    ts_ns: np.ndarray  # int64, UTC nanoseconds
    wire_len: np.ndarray  # uint32, original link-layer length
    ip_len: np.ndarray  # uint32, IP total length from the header (IPv6: payload length + 40); 0 if not IP
    ip_version: np.ndarray  # uint8, 4, 6 or 0 (not IP / undecodable)
    src_addr: np.ndarray  # (n, 16) uint8, IPv4-mapped for v4 (see flowscope.addresses)
    dst_addr: np.ndarray  # (n, 16) uint8
    proto: np.ndarray  # uint8, transport protocol (after IPv6 extension headers)
    src_port: np.ndarray  # uint16 (0 when no ports; ICMP/ICMPv6: 0)
    dst_port: np.ndarray  # uint16
    icmp_type: np.ndarray  # uint8
    icmp_code: np.ndarray  # uint8
    tcp_flags: np.ndarray  # uint8
    tcp_seq: np.ndarray  # uint32, TCP sequence number (0 when no whole TCP header: see l4_offset)
    tcp_ack: np.ndarray  # uint32, TCP acknowledgment number (0 likewise)
    ip_tos: np.ndarray  # uint8 (IPv6: traffic class)
    ip_ttl: np.ndarray  # uint8 (IPv6: hop limit)
    vlan_id: np.ndarray  # uint16, outermost 802.1Q id, 0 if none
    etype: np.ndarray  # uint16, ethertype of the network layer (0x0800 / 0x86DD / other)
    src_mac: np.ndarray  # uint64 (48-bit), 0 if no Ethernet
    dst_mac: np.ndarray  # uint64
    frag_id: np.ndarray  # uint32, IPv4 identification / IPv6 fragment header id
    frag_offset: np.ndarray  # uint16, in 8-byte units; 0 for first fragment or unfragmented
    more_fragments: np.ndarray  # bool
    l4_offset: np.ndarray  # int64, offset in `data` of the L4 payload (after the TCP/UDP/SCTP/ICMP header), -1 if none
    l4_len: np.ndarray  # int32, captured bytes of L4 payload available (0 if none)
    data: np.ndarray  # uint8 buffer the offsets point into (the raw captured bytes of this batch)

    def __len__(self) -> int:
        return int(self.ts_ns.shape[0])

    @classmethod
    def empty(cls, n: int = 0, data: np.ndarray | None = None) -> PacketBatch:
        """A batch of ``n`` zeroed rows (``l4_offset`` -1), to be filled column by column."""
        columns: dict[str, np.ndarray] = {name: np.zeros((n, *shape), dtype=dtype) for name, dtype, shape in COLUMNS}
        columns["l4_offset"][:] = -1
        return cls(**columns, data=np.zeros(0, np.uint8) if data is None else data)

    def take(self, selector: np.ndarray) -> PacketBatch:
        """The rows chosen by a boolean mask or an index array; ``data`` is shared, not copied."""
        return PacketBatch(
            **{name: getattr(self, name)[selector] for name, _, _ in COLUMNS},
            data=self.data,
        )

    def payload(self, row: int) -> bytes:
        """The captured L4 payload of one row (for per-datagram decoders such as NetFlow/sFlow)."""
        start = int(self.l4_offset[row])
        if start < 0:
            return b""
        return self.data[start : start + int(self.l4_len[row])].tobytes()

    @staticmethod
    def concat(batches: list[PacketBatch]) -> PacketBatch:
        """One batch from several; data buffers are joined and offsets shifted accordingly."""
        if not batches:
            return PacketBatch.empty()
        if len(batches) == 1:
            return batches[0]
        shifts = np.cumsum([0] + [b.data.shape[0] for b in batches[:-1]])
        columns = {name: np.concatenate([getattr(b, name) for b in batches]) for name, _, _ in COLUMNS}
        columns["l4_offset"] = np.concatenate(
            [np.where(b.l4_offset >= 0, b.l4_offset + shift, -1) for b, shift in zip(batches, shifts, strict=True)]
        )
        return PacketBatch(**columns, data=np.concatenate([b.data for b in batches]))


assert [f.name for f in fields(PacketBatch)][:-1] == [name for name, _, _ in COLUMNS]
