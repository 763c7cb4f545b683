"""Which NetFlow v9 / IPFIX information elements fill which flow-schema column, and how to read them.

Element numbers are IANA's IPFIX registry (RFC 7012), which NetFlow v9 (RFC 3954) shares
for 1-127. Enterprise elements are keyed ``(enterprise, number)``; only RFC 5103 reverse
counters (enterprise 29305) are used, every other enterprise element is skipped by length.
For a column fed by several elements, the first one a template carries wins.

Some templates describe two headers of a tunnelled packet by repeating the header elements
(Cisco and Huawei SRv6: the outer IPv6 addresses, then the carried IPv4 5-tuple). Their key
columns must all come from one header, never a mix of both: ``header_layers`` tells which
header each element belongs to, and ``Template.offsets(tunnels)`` reads the outer or inner one.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum

V9, IPFIX = 9, 10
"""Version numbers in the message header of NetFlow v9 and IPFIX."""

REVERSE_PEN = 29305
"""RFC 5103 reverse-direction elements: same number as the forward element, this enterprise."""

FieldKey = tuple[int, int]
"""(enterprise number, element id); enterprise 0 is IANA."""


class Kind(Enum):
    UNSIGNED = "unsigned"
    """Big-endian unsigned of any length 1-8 (covers reduced-size encoding, RFC 7011 section 6.2)."""
    IPV4 = "ipv4"
    IPV6 = "ipv6"
    MAC = "mac"


def iana(*ids: int) -> tuple[FieldKey, ...]:
    return tuple((0, i) for i in ids)


# column -> (kind, candidate elements in order of preference)
COLUMN_SOURCES: dict[str, tuple[Kind, tuple[FieldKey, ...]]] = {
    "bytes": (Kind.UNSIGNED, iana(1, 85, 23, 231)),  # octetDelta, octetTotal, postOctetDelta, initiatorOctets
    "packets": (Kind.UNSIGNED, iana(2, 86, 24, 298)),
    "bytes_rev": (Kind.UNSIGNED, ((REVERSE_PEN, 1), (REVERSE_PEN, 85), (0, 232))),  # ..., responderOctets
    "packets_rev": (Kind.UNSIGNED, ((REVERSE_PEN, 2), (REVERSE_PEN, 86), (0, 299))),
    "proto": (Kind.UNSIGNED, iana(4)),
    "ip_tos": (Kind.UNSIGNED, iana(5)),
    "tcp_flags": (Kind.UNSIGNED, iana(6)),
    "src_port": (Kind.UNSIGNED, iana(7, 180, 182)),  # l4 / udp / tcp source port
    "dst_port": (Kind.UNSIGNED, iana(11, 181, 183)),
    "in_if": (Kind.UNSIGNED, iana(10, 252)),  # ingressInterface, ingressPhysicalInterface
    "out_if": (Kind.UNSIGNED, iana(14, 253)),
    "src_as": (Kind.UNSIGNED, iana(16)),
    "dst_as": (Kind.UNSIGNED, iana(17)),
    "ip_ttl": (Kind.UNSIGNED, iana(192, 52)),  # ipTTL, minimumTTL
    "vlan_id": (Kind.UNSIGNED, iana(58, 243, 59, 254)),  # vlanId, dot1qVlanId, postVlanId, postDot1qVlanId
    "src_mac": (Kind.MAC, iana(56, 81)),  # sourceMacAddress, postSourceMacAddress
    "dst_mac": (Kind.MAC, iana(80, 57)),  # destinationMacAddress, postDestinationMacAddress
    "etype": (Kind.UNSIGNED, iana(256)),  # ethernetType
}

ADDRESS_SOURCES: dict[str, tuple[tuple[FieldKey, Kind], ...]] = {
    "src_addr": (((0, 8), Kind.IPV4), ((0, 27), Kind.IPV6)),
    "dst_addr": (((0, 12), Kind.IPV4), ((0, 28), Kind.IPV6)),
    # ipNextHop v4/v6 before bgpNextHop v4/v6
    "next_hop": (((0, 15), Kind.IPV4), ((0, 62), Kind.IPV6), ((0, 18), Kind.IPV4), ((0, 63), Kind.IPV6)),
}

HEADER_SLOTS: dict[FieldKey, str] = {
    **dict.fromkeys(iana(8, 27), "source address"),  # one slot for both families: a tunnel may switch family
    **dict.fromkeys(iana(12, 28), "destination address"),
    **dict.fromkeys(iana(7, 180, 182), "source port"),  # transport / UDP / TCP
    **dict.fromkeys(iana(11, 181, 183), "destination port"),
    **dict.fromkeys(iana(32, 139), "ICMP type and code"),
    **dict.fromkeys(iana(176, 178), "ICMP type"),
    **dict.fromkeys(iana(177, 179), "ICMP code"),
    (0, 4): "protocol",
    (0, 5): "type of service",
    (0, 6): "TCP flags",
    (0, 31): "flow label",
    (0, 52): "minimum TTL",
    (0, 60): "IP version",
    (0, 192): "TTL",
}
"""Elements describing one IP/transport header, by the header field they fill (the flow's key and its
per-header attributes). Interfaces, counters, times, MACs and VLANs describe the flow, not a header."""


def header_layers(keys: Sequence[FieldKey]) -> list[int | None]:
    """Which header each template field describes: 0 the outermost, then 1, ...; None for other fields.

    A template describes several headers only when it repeats a header element (RFC 7011 section 8:
    repeated occurrences follow the order in which the metering process treats them). The fields are
    then walked from the outer header inwards: a field whose header slot the current header already
    has starts the next header, so outer IPv6 addresses (27/28) followed by inner IPv4 ones (8/12)
    are two headers. Without a repeated element everything is one header, also a template carrying
    both address families for records of either (one of them zero per record).
    """
    header = [key for key in keys if key in HEADER_SLOTS]
    if len(set(header)) == len(header):
        return [0 if key in HEADER_SLOTS else None for key in keys]
    layers: list[int | None] = []
    layer, seen = 0, set[str]()
    for key in keys:
        slot = HEADER_SLOTS.get(key)
        if slot is None:
            layers.append(None)
            continue
        if slot in seen:
            layer, seen = layer + 1, set()
        seen.add(slot)
        layers.append(layer)
    return layers


IP_VERSION = (0, 60)
ICMP_TYPE_CODE = iana(32, 139)  # icmpTypeCodeIPv4 / IPv6: type * 256 + code
ICMP_TYPE = iana(176, 178)
ICMP_CODE = iana(177, 179)

# Flow times (RFC 7012 section 5.9): sysUpTime-relative milliseconds, absolute, or delta to export time.
END_UPTIME_MS, START_UPTIME_MS = (0, 21), (0, 22)
SYSTEM_INIT_MS = (0, 160)  # systemInitTimeMilliseconds: the uptime origin for 21/22 in IPFIX
ABSOLUTE_TIMES = {
    # element -> (is_start, unit): "s" seconds, "ms" milliseconds, "ntp" NTP 64-bit timestamp
    (0, 150): (True, "s"),
    (0, 151): (False, "s"),
    (0, 152): (True, "ms"),
    (0, 153): (False, "ms"),
    (0, 154): (True, "ntp"),
    (0, 155): (False, "ntp"),
    (0, 156): (True, "ntp"),
    (0, 157): (False, "ntp"),
}
DELTA_TIMES_US = {(0, 158): True, (0, 159): False}  # flowStart/EndDeltaMicroseconds, before export time

# Sampling (RFC 3954 section 8 / RFC 7012 / RFC 5477): carried in options data or in flow records.
SAMPLER_ID = iana(48, 302)  # samplerId / FLOW_SAMPLER_ID, selectorId
SAMPLING_INTERVAL = iana(34, 50)  # samplingInterval, samplerRandomInterval: 1 of N
PACKET_INTERVAL, PACKET_SPACE = (0, 305), (0, 306)  # selected N, then skip M: rate (N + M) / N
SAMPLING_SIZE, SAMPLING_POPULATION = (0, 309), (0, 310)  # size of population sampled: rate population / size
VARIABLE_LENGTH = 0xFFFF
