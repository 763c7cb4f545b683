"""The numpy binary COPY encoder against a real PostgreSQL server."""

from __future__ import annotations

import datetime as dt
import ipaddress

import psycopg
import pyarrow as pa
import pytest

from flowscope import addresses
from flowscope.materialize.pgcopy import HEADER, TRAILER, encode, pg_column

TABLE = pa.table(
    {
        "d": pa.array([dt.date(2017, 4, 26), None, dt.date(1999, 12, 31), dt.date(2000, 1, 1)], pa.date32()),
        "s": pa.array(["50.31.185", None, "héllo", ""]),
        "p": pa.array([80, 443, None, 65535], pa.uint16()),
        "u": pa.array([4, None, 2**40, 0], pa.uint64()),
        "f": pa.array([1.5, None, -2.0, 1e300]),
        "ts": pa.array([0, 1_500_000_123_456_000, None, 946_684_800_000_000_000], pa.timestamp("ns", tz="UTC")),
        "b": pa.array([b"\x00\x01", None, b"", b"\xff" * 16], pa.binary()),
        "small": pa.array([1, 2, 255, None], pa.uint8()),
        "flag": pa.array([True, False, None, True]),
        "src_addr": addresses.parse_text(pa.array(["50.31.185.39", "2001:db8::1", None, "::"])),
        "src_mac": pa.array([0x0011223344FF, None, 0, 0xFFFFFFFFFFFF], pa.uint64()),
    }
)
# What psycopg returns for the inet and macaddr columns above.
RETURNED = {
    "src_addr": [ipaddress.ip_address("50.31.185.39"), ipaddress.ip_address("2001:db8::1"), None,
                 ipaddress.ip_address("::")],
    "src_mac": ["00:11:22:33:44:ff", None, "00:00:00:00:00:00", "ff:ff:ff:ff:ff:ff"],
}  # fmt: skip


def test_stream_framing() -> None:
    data = encode(TABLE.slice(0, 1))
    assert data.startswith(HEADER) and data.endswith(TRAILER)
    assert data[len(HEADER) : len(HEADER) + 2] == len(TABLE.columns).to_bytes(2, "big")
    assert encode(TABLE.slice(0, 0)) == HEADER + TRAILER


@pytest.mark.integration
def test_round_trip_through_postgres(postgres_server: str) -> None:
    columns = ", ".join(f"{f.name} {pg_column(f).sql_type}" for f in TABLE.schema)
    with psycopg.connect(postgres_server) as con:
        con.execute(f"CREATE TEMP TABLE copied (n serial, {columns})")
        names = ", ".join(TABLE.column_names)
        with con.cursor().copy(f"COPY copied ({names}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.write(encode(TABLE))
        rows = con.execute(f"SELECT {names} FROM copied").fetchall()
    expected = TABLE.to_pydict() | RETURNED
    expected = list(zip(*expected.values(), strict=True))
    normalised = sorted((tuple(v.replace(tzinfo=dt.UTC) if isinstance(v, dt.datetime) else v for v in r) for r in rows),
                        key=repr)  # fmt: skip
    assert normalised == sorted(expected, key=repr)
