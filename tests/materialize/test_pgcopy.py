"""The numpy binary COPY encoder against a real PostgreSQL server."""

from __future__ import annotations

import datetime as dt
import ipaddress

import psycopg
import pyarrow as pa
import pytest

from flowscope import addresses
from flowscope.materialize.pgcopy import HEADER, MAX_RUNS, TRAILER, encode, encode_rows, pg_column
from flowscope.schema import ADDRESS, FLOWS, TABLES, postgres_columns, table_columns, table_schema
from helpers import flows

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


def test_rows_keep_their_order_in_few_runs_of_one_shape() -> None:
    """``keep_order`` (a new table loaded in key order): runs of one shape one after the other; beyond
    ``MAX_RUNS`` runs the rows are grouped by shape (the same rows, in another order)."""
    table = pa.table({"k": range(6), "s": ["a", "a", None, None, "bb", "bb"]})
    one_by_one = [b"".join(encode_rows(table.slice(i, 1))) for i in range(table.num_rows)]
    assert b"".join(encode_rows(table, keep_order=True)) == b"".join(one_by_one)
    assert b"".join(encode_rows(table)) != b"".join(one_by_one)  # grouped by shape
    alternating = pa.table({"k": range(2 * MAX_RUNS), "s": ["a", None] * MAX_RUNS})
    assert len(encode_rows(alternating, keep_order=True)) == 2


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


@pytest.mark.parametrize("table", TABLES)
def test_catalogue_columns_get_the_catalogue_types(table: str) -> None:
    """Lake columns as a view passes them on (DuckDB returns addresses as variable binary) get the types
    ``schema.postgres_columns`` declares, so a table made from either holds the other's rows."""
    for column in table_columns(table):
        assert pg_column(column.field).sql_type == column.postgres, column.name
        read_back = pa.binary() if column.arrow_type == ADDRESS else column.arrow_type
        assert pg_column(pa.field(column.name, read_back)).sql_type == column.postgres, column.name


def _one_of_each(table: str) -> pa.Table:
    if table == FLOWS:
        rows = flows(3)
        macs = pa.array([1, None, 2**48 - 1], pa.uint64())
        return rows.set_column(rows.schema.get_field_index("src_mac"), "src_mac", macs)
    schema = table_schema(table)
    values = {f.name: [0 if pa.types.is_timestamp(f.type) else 1] for f in schema if f.type != ADDRESS}
    values.update({f.name: addresses.parse_text(pa.array(["192.0.2.1"])) for f in schema if f.type == ADDRESS})
    values.update({f.name: [True] for f in schema if pa.types.is_boolean(f.type)})
    return pa.table(values, schema=schema)


@pytest.mark.integration
@pytest.mark.parametrize("table", TABLES)
def test_catalogue_tables_take_lake_rows_in_postgres(postgres_server: str, table: str) -> None:
    rows = _one_of_each(table)
    columns = ", ".join(f"{name} {kind}" for name, kind in postgres_columns(table))
    with psycopg.connect(postgres_server) as con:
        con.execute(f"CREATE TEMP TABLE copied ({columns})")
        with con.cursor().copy("COPY copied FROM STDIN (FORMAT BINARY)") as copy:
            copy.write(encode(rows))
        assert con.execute("SELECT count(*) FROM copied").fetchone()[0] == rows.num_rows
