"""SQL helpers for the lake's 16-byte addresses, MACs, protocols and sampling, in every lake connection.

    ip_text(addr)             16-byte address -> '192.0.2.1' / '2001:db8::1'
    ip('192.0.2.1')           text -> 16-byte address (for equality filters)
    in_cidr(addr, '10.0.0.0/8')   prefix filter (a byte-range test, so Parquet statistics prune files)
    mac_text(mac)             uint64 MAC -> 'aa:bb:cc:dd:ee:ff'
    proto_name(proto)         6 -> 'tcp', 17 -> 'udp', ... (the number as text when not a common one)
    scaled(bytes, sampling_rate)  a sampled counter scaled to the traffic it stands for (rate unknown: as is)
    sampling_known(sampling_rate) false where the exporter's sampling rate is unknown (null or 0)
    service_net(addr)         '50.31.185' for 50.31.185.39, '2001:db8:1::/48' for an IPv6 address

Functions and macros bind no lake file, so registering them all costs the connection nothing measurable.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa
from duckdb import func

from flowscope import addresses

# service_net(addr): its IPv4 /24 without the last octet, or its IPv6 /48 in canonical text (only the trailing
# zero groups are compressed). Pure SQL on hex(addr), so DuckDB runs it vectorised.
_SERVICE_NET_MACROS = (
    "CREATE MACRO _fs_octet(h, i) AS CAST(CAST('0x' || substr(h, 2 * i + 1, 2) AS INTEGER) AS VARCHAR)",
    "CREATE MACRO _fs_hextet(h, i) AS coalesce(nullif(lower(ltrim(substr(h, 4 * i + 1, 4), '0')), ''), '0')",
    "CREATE MACRO _fs_net6(a, b, c) AS (CASE WHEN c <> '0' THEN a || ':' || b || ':' || c || '::' "
    "WHEN b <> '0' THEN a || ':' || b || '::' WHEN a <> '0' THEN a || '::' ELSE '::' END) || '/48'",
    "CREATE MACRO _fs_net(h) AS CASE WHEN h IS NULL THEN NULL "
    "WHEN substr(h, 1, 24) = '00000000000000000000FFFF' "
    "THEN _fs_octet(h, 12) || '.' || _fs_octet(h, 13) || '.' || _fs_octet(h, 14) "
    "ELSE _fs_net6(_fs_hextet(h, 0), _fs_hextet(h, 1), _fs_hextet(h, 2)) END",
    "CREATE MACRO service_net(address) AS _fs_net(hex(address))",
)


PROTOCOL_NAMES = {
    1: "icmp", 2: "igmp", 6: "tcp", 17: "udp", 47: "gre", 50: "esp", 51: "ah", 58: "ipv6-icmp", 89: "ospf",
    132: "sctp",
}  # fmt: skip
"""IP protocol numbers shown by name (``proto_name``); others are shown as the number."""


def proto_name_sql(value: str, as_text: str) -> str:
    """``proto_name(value)`` as a plain SQL CASE (``as_text``: the dialect's number-to-text of ``value``), so the
    lake's macro and the reports rendered for other databases name protocols alike."""
    names = " ".join(f"WHEN {number} THEN '{name}'" for number, name in PROTOCOL_NAMES.items())
    return f"CASE {value} {names} ELSE {as_text} END"


def register_helpers(con: duckdb.DuckDBPyConnection) -> None:
    def ip_text(values: pa.Array) -> pa.Array:
        return addresses.format_text(values)

    def ip(values: pa.Array) -> pa.Array:
        return addresses.parse_text(values)

    def cidr_lo(values: pa.Array) -> pa.Array:
        return pa.array([addresses.cidr_bounds(v)[0] for v in values.to_pylist()], pa.binary())

    def cidr_hi(values: pa.Array) -> pa.Array:
        return pa.array([addresses.cidr_bounds(v)[1] for v in values.to_pylist()], pa.binary())

    def mac_text(values: pa.Array) -> pa.Array:
        return addresses.format_mac(values)

    for name, function, argument, result in (
        ("ip_text", ip_text, "BLOB", "VARCHAR"),
        ("ip", ip, "VARCHAR", "BLOB"),
        ("cidr_lo", cidr_lo, "VARCHAR", "BLOB"),
        ("cidr_hi", cidr_hi, "VARCHAR", "BLOB"),
        ("mac_text", mac_text, "UBIGINT", "VARCHAR"),
    ):
        con.create_function(name, function, [argument], result, type=func.PythonUDFType.ARROW)
    con.execute("CREATE MACRO in_cidr(address, prefix) AS address BETWEEN cidr_lo(prefix) AND cidr_hi(prefix)")
    con.execute(f"CREATE MACRO proto_name(p) AS {proto_name_sql('p', 'CAST(p AS VARCHAR)')}")
    con.execute("CREATE MACRO scaled(value, rate) AS value * coalesce(nullif(rate, 0), 1)")
    con.execute("CREATE MACRO sampling_known(rate) AS coalesce(rate, 0) > 0")
    for macro in _SERVICE_NET_MACROS:
        con.execute(macro)
