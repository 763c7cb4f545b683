"""``flowscope materialize``: SQLite, DuckDB and PostgreSQL tables equal to the view, after re-runs and kills."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import psycopg
import pyarrow as pa
import pytest
from click.testing import CliRunner
from tests.helpers import flows, wait_until

from flowscope.cli import main
from flowscope.display import textual
from flowscope.errors import FlowscopeError
from flowscope.lake import Lake, LakeWriter
from flowscope.lake.maintenance import compact
from flowscope.materialize.run import lake_state, materialize_once
from flowscope.materialize.target import Change, LakeState, Rows, open_target
from flowscope.query import open_lake, views_named
from flowscope.query.views import view_key
from flowscope.schema import conform

EXAMPLE = Path(__file__).parents[1] / "csv" / "data" / "unicauca11_example.csv"
SERVICE = (dt.date(2017, 4, 26), "50.31.185", 80)
PAIR = ("50.31.185.39", 80, "10.200.7.217", 38848)


def cli(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())  # rich wraps long lines


def read_example(lake: Path) -> None:
    """The example's rows into the lake, again each time (--again: these tests want the rows repeated)."""
    cli("--lake", str(lake), "read", str(EXAMPLE), "--again")


def rows_of(url: str, table: str) -> list[tuple]:
    """Every row of the target table, sorted, dates as ``date`` objects."""
    query = f'SELECT * FROM "{table}"'
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as con:
            rows = con.execute(query).fetchall()
    elif url.startswith("duckdb"):
        with duckdb.connect(url.removeprefix("duckdb:///")) as con:
            rows = [tuple(r.values()) for r in con.sql(query).to_arrow_table().to_pylist()]
    else:
        rows = postgres_rows(url, query)
    normal = [tuple(dt.date.fromisoformat(v) if isinstance(v, str) and len(v) == 10 and v[4] == "-" else v
                    for v in row) for row in rows]  # fmt: skip
    return sorted(normal, key=repr)


def postgres_rows(url: str, query: str) -> list[tuple]:
    """Rows with ``inet`` values as text, as the other targets store addresses."""
    with psycopg.connect(url) as con:
        rows = con.execute(query).fetchall()
    return [tuple(str(v) if isinstance(v, ipaddress.IPv4Address | ipaddress.IPv6Address) else v for v in row)
            for row in rows]  # fmt: skip


PAIR_COLUMNS = ("src_addr", "src_port", "dst_addr", "dst_port", "packets", "bytes", "packets_rev", "bytes_rev")


def pair_rows_of(url: str, table: str) -> list[tuple]:
    """The pairs columns every target stores alike (addresses as text, integers)."""
    columns = ", ".join(PAIR_COLUMNS)
    query = f'SELECT {columns} FROM "{table}"'
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as con:
            return sorted(con.execute(query).fetchall())
    if url.startswith("duckdb"):
        with duckdb.connect(url.removeprefix("duckdb:///")) as con:
            return sorted(con.execute(query).fetchall())
    return sorted(postgres_rows(url, query))


def view_pair_rows(lake: Path) -> list[tuple]:
    with open_lake(lake, views=["pairs"]) as con:
        table = con.sql(f"SELECT {', '.join(PAIR_COLUMNS)} FROM pairs").to_arrow_table()
    return sorted(tuple(r.values()) for r in textual(table).to_pylist())


@pytest.fixture(params=["sqlite", "duckdb", pytest.param("postgresql", marks=pytest.mark.integration)])
def target_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/target.db"
    if request.param == "duckdb":
        return f"duckdb:///{tmp_path}/target.duckdb"
    return request.getfixturevalue("postgres_url")


def test_services_by_day_rerun_and_new_data(lake_dir: Path, target_url: str, table_name: str) -> None:
    read_example(lake_dir)
    materialize = ("--lake", str(lake_dir), "materialize", "services_by_day", "--to", target_url, "--table", table_name)
    cli(*materialize)
    assert rows_of(target_url, table_name) == [(*SERVICE, 4, 674)]
    assert "nothing to do" in cli(*materialize)  # a second run applies nothing twice
    assert rows_of(target_url, table_name) == [(*SERVICE, 4, 674)]
    read_example(lake_dir)  # the same eight rows again: the view doubles, the table follows it
    cli(*materialize)
    assert rows_of(target_url, table_name) == [(*SERVICE, 8, 1348)]
    cli(*materialize)
    assert rows_of(target_url, table_name) == [(*SERVICE, 8, 1348)]


def test_pairs_view_with_text_addresses(lake_dir: Path, target_url: str, table_name: str) -> None:
    read_example(lake_dir)
    cli("--lake", str(lake_dir), "materialize", "pairs", "--to", target_url, "--table", table_name)
    stored = rows_of(target_url, table_name)
    assert len(stored) == 7
    names = view_columns(lake_dir, "pairs")
    row = next(dict(zip(names, r, strict=True)) for r in stored if r[names.index("src_addr")] == "50.31.185.39")
    assert (row["packets"], row["bytes"], row["packets_rev"], row["bytes_rev"]) == (4, 674, 3, 0)


def test_the_table_is_named_after_the_view_by_default(lake_dir: Path, tmp_path: Path) -> None:
    """``--table`` may be left out: the table takes the view's name (it was a required option)."""
    read_example(lake_dir)
    target = f"sqlite:///{tmp_path}/named.db"
    assert "pairs -> pairs: 7 rows" in cli("--lake", str(lake_dir), "materialize", "pairs", "--to", target)
    assert len(rows_of(target, "pairs")) == 7


def view_columns(lake: Path, view: str) -> list[str]:
    with open_lake(lake, views=views_named(view)) as con:
        return con.sql(f"SELECT * FROM {view} LIMIT 0").columns


def test_unknown_target_and_view_are_clear_errors(lake_dir: Path) -> None:
    lake_dir.mkdir()
    result = CliRunner().invoke(
        main, ["--lake", str(lake_dir), "materialize", "pairs", "--to", "mysql://x", "--table", "t"]
    )
    assert result.exit_code == 2 and "unknown target" in result.output
    result = CliRunner().invoke(
        main, ["--lake", str(lake_dir), "materialize", "flows", "--to", "sqlite:///x.db", "--table", "t"]
    )
    assert result.exit_code == 2 and "--key" in result.output
    for scheme in ("sqlite", "duckdb"):  # a typo in the file's directory: one error, for both file targets
        missing = lake_dir.parent / "no-such-dir" / "x.db"
        result = CliRunner().invoke(
            main, ["--lake", str(lake_dir), "materialize", "pairs", "--to", f"{scheme}:///{missing}", "--table", "t"]
        )
        assert result.exit_code == 2 and f"directory {missing.parent} does not exist" in result.output
        assert not missing.parent.exists()


def fill_lake(lake: Path, rows: int) -> None:
    with LakeWriter(lake) as writer:
        for start in range(0, rows, 100_000):
            writer.write(flows(min(100_000, rows - start), first_id=start))


def kill_when(process: subprocess.Popen, midway: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if midway():
            process.send_signal(signal.SIGKILL)
            process.wait()
            return
        time.sleep(0.005)
    pytest.fail("the materialize run ended before it was caught mid-transaction")


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def test_run_killed_halfway_then_rerun(lake_dir: Path, tmp_path: Path, kind: str, table_name: str,
                                       request: pytest.FixtureRequest) -> None:  # fmt: skip
    url = f"sqlite:///{tmp_path}/target.db" if kind == "sqlite" else request.getfixturevalue("postgres_url")
    read_example(lake_dir)
    command = ["--lake", str(lake_dir), "materialize", "pairs", "--to", url, "--table", table_name]
    cli(*command)
    before = rows_of(url, table_name)
    assert len(before) == 7
    fill_lake(lake_dir, 400_000)

    if kind == "sqlite":
        journal = Path(f"{tmp_path}/target.db-journal")

        def midway() -> bool:
            return journal.exists()
    else:

        def midway() -> bool:
            with psycopg.connect(url, autocommit=True) as con:
                active = con.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'flowscope-materialize' "
                    "AND state = 'active' AND (query LIKE 'COPY%%' OR query LIKE 'INSERT%%')"
                ).fetchone()[0]
            return active > 0

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    process = subprocess.Popen([sys.executable, "-m", "flowscope", *command], env=env, stderr=subprocess.DEVNULL)
    kill_when(process, midway)
    assert rows_of(url, table_name) == before  # the killed run's transaction left nothing behind
    cli(*command)
    after = pair_rows_of(url, table_name)
    assert len(after) > len(before)
    assert after == view_pair_rows(lake_dir)
    assert "nothing to do" in cli(*command)


@pytest.mark.integration
def test_postgres_and_sqlite_hold_the_same(lake_dir: Path, tmp_path: Path, postgres_url: str, table_name: str) -> None:
    read_example(lake_dir)
    fill_lake(lake_dir, 20_000)
    sqlite_url = f"sqlite:///{tmp_path}/same.db"
    for url in (sqlite_url, postgres_url):
        cli("--lake", str(lake_dir), "materialize", "pairs", "--to", url, "--table", table_name)
    assert pair_rows_of(sqlite_url, table_name) == pair_rows_of(postgres_url, table_name) == view_pair_rows(lake_dir)
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as con:
        stamp = con.execute(f'SELECT time_flow_start FROM "{table_name}" WHERE src_addr = ?', (PAIR[0],)).fetchone()[0]
    with psycopg.connect(postgres_url) as con:
        moment = con.execute(f'SELECT time_flow_start FROM "{table_name}" WHERE src_addr = %s', (PAIR[0],)).fetchone()[
            0
        ]
    assert stamp == "2017-04-26T11:11:17.000000000Z" and moment == dt.datetime(2017, 4, 26, 11, 11, 17, tzinfo=dt.UTC)


@pytest.mark.integration
def test_postgres_stores_addresses_as_inet(lake_dir: Path, postgres_url: str, table_name: str) -> None:
    read_example(lake_dir)
    cli("--lake", str(lake_dir), "materialize", "pairs", "--to", postgres_url, "--table", table_name)
    with psycopg.connect(postgres_url) as con:
        kinds = dict(con.execute(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = %s::regclass",
            (f'"{table_name}"',),
        ).fetchall())  # fmt: skip
        inside = con.execute(f'SELECT count(*) FROM "{table_name}" WHERE src_addr << %s', ("50.31.185.0/24",))
        assert inside.fetchone()[0] == 1
    assert kinds["src_addr"] == kinds["dst_addr"] == "inet" and kinds["src_mac"] == "macaddr"


@pytest.mark.slow
def test_follow_applies_new_lake_data(lake_dir: Path, tmp_path: Path, table_name: str) -> None:
    url = f"sqlite:///{tmp_path}/follow.db"
    read_example(lake_dir)
    command = [sys.executable, "-m", "flowscope", "--lake", str(lake_dir), "materialize", "services_by_day",
               "--to", url, "--table", table_name, "--follow", "--interval", "0.2"]  # fmt: skip

    def stored() -> list[tuple]:
        try:
            return rows_of(url, table_name)
        except sqlite3.OperationalError:
            return []

    with subprocess.Popen(command, stderr=subprocess.DEVNULL) as process:
        try:
            assert wait_until(lambda: stored() == [(*SERVICE, 4, 674)])
            read_example(lake_dir)
            assert wait_until(lambda: stored() == [(*SERVICE, 8, 1348)])
        finally:
            process.terminate()
            process.wait(timeout=30)


@pytest.mark.integration
def test_postgres_table_of_other_column_types_is_a_clear_error(lake_dir: Path, postgres_url: str,
                                                              table_name: str) -> None:  # fmt: skip
    read_example(lake_dir)
    with psycopg.connect(postgres_url, autocommit=True) as con:
        con.execute(f'CREATE TABLE "{table_name}" (day text, service_net text, service_port integer, '
                    "packets bigint, bytes bigint)")  # fmt: skip
    command = ["--lake", str(lake_dir), "materialize", "services_by_day", "--to", postgres_url, "--table", table_name]
    result = CliRunner().invoke(main, command)
    assert result.exit_code == 2 and "exists as (day text" in result.output and "drop it" in result.output


def test_new_lake_files_recompute_only_their_keys(lake_dir: Path, target_url: str, table_name: str) -> None:
    read_example(lake_dir)
    fill_lake(lake_dir, 3_000)
    materialize = ("--lake", str(lake_dir), "materialize", "pairs", "--to", target_url, "--table", table_name)
    assert "new file" not in cli(*materialize)
    read_example(lake_dir)  # the example's 7 pairs again: only they change
    output = cli(*materialize)
    assert "7 rows for the keys of 1 new file(s), 7 inserted or changed, 0 deleted" in output
    assert pair_rows_of(target_url, table_name) == view_pair_rows(lake_dir)
    assert "nothing to do" in cli(*materialize)
    compact(Lake(lake_dir))  # files vanish: the next run goes over the whole view again
    output = cli(*materialize)
    assert "new file" not in output and "0 inserted or changed, 0 deleted" in output
    assert pair_rows_of(target_url, table_name) == view_pair_rows(lake_dir)


def test_a_dropped_table_is_made_whole_again(lake_dir: Path, tmp_path: Path, table_name: str) -> None:
    url = f"sqlite:///{tmp_path}/target.db"
    read_example(lake_dir)
    materialize = ("--lake", str(lake_dir), "materialize", "pairs", "--to", url, "--table", table_name)
    cli(*materialize)
    with sqlite3.connect(tmp_path / "target.db") as con:
        con.execute(f'DROP TABLE "{table_name}"')
    read_example(lake_dir)
    assert "new file" not in cli(*materialize)
    assert pair_rows_of(url, table_name) == view_pair_rows(lake_dir)


def test_another_view_into_the_same_table_is_applied_whole(lake_dir: Path, tmp_path: Path, table_name: str) -> None:
    """Switching the view a table holds, with no new lake file, recomputes it rather than finding nothing new."""
    url = f"sqlite:///{tmp_path}/target.db"
    read_example(lake_dir)
    pair_key = ("--key", "src_addr,src_port,dst_addr,dst_port")
    stored = []
    for view in ("pairs", "conversations", "pairs"):  # same columns and key columns, other values
        cli("--lake", str(lake_dir), "materialize", view, "--to", url, "--table", table_name, *pair_key)
        stored.append(rows_of(url, table_name))
    assert stored[1] != stored[0] and stored[2] == stored[0]


def test_rows_with_an_empty_key_part_are_counted_not_stored(lake_dir: Path, tmp_path: Path, table_name: str) -> None:
    read_example(lake_dir)
    with LakeWriter(lake_dir) as writer:  # flows without addresses: their pairs key has NULL parts
        start = pa.array([1_500_000_000_000_000_000] * 2, pa.timestamp("ns", "UTC"))
        writer.write(conform(pa.table({"src_port": pa.array([1, 2], pa.uint16()), "time_flow_start": start,
                                       "time_flow_end": start})))  # fmt: skip
    url = f"sqlite:///{tmp_path}/target.db"
    output = cli("--lake", str(lake_dir), "materialize", "pairs", "--to", url, "--table", table_name)
    assert "2 view rows with an empty key not stored" in output
    assert len(rows_of(url, table_name)) == 7


def test_a_run_overtaken_by_another_applies_nothing(lake_dir: Path, target_url: str, table_name: str) -> None:
    read_example(lake_dir)
    target = open_target(target_url)
    try:
        first = materialize_once(Lake(lake_dir), "pairs", target, table_name, view_key("pairs"))
        read_example(lake_dir)
        state = lake_state(Lake(lake_dir), "pairs", view_key("pairs"))
        with open_lake(lake_dir, views=["pairs"]) as con:
            rows = con.sql("SELECT * FROM pairs").to_arrow_table()
        key = view_key("pairs")
        stale = Change(table_name, key, Rows([rows], True, key, "pairs"), "pairs", state, seen="an older digest")
        with pytest.raises(FlowscopeError, match="updated by another materialize run"):
            target.apply(stale)
        assert target.applied_state(table_name) == first.state.digest
    finally:
        target.close()


def _apply_to_postgres(url: str, table: str, rows: pa.Table, digest: str, seen: str | None) -> None:
    target = open_target(url)
    try:
        target.apply(Change(table, ("k",), Rows([rows], True, ("k",), "v"), "v", LakeState(digest, {}), seen))
    finally:
        target.close()


@pytest.mark.integration
def test_postgres_columns_null_in_every_row(postgres_url: str, table_name: str) -> None:
    """All-NULL columns are left out of the COPY into a table the run creates (new table, stage): they must
    still be there, NULL, and an upsert must overwrite older values with those NULLs."""
    first = pa.table({"k": [1, 2], "value": [10, 20], "note": pa.array([None, None], pa.string())})
    _apply_to_postgres(postgres_url, table_name, first, "d1", None)
    assert rows_of(postgres_url, table_name) == [(1, 10, None), (2, 20, None)]
    second = pa.table({"k": [1, 3], "value": pa.array([None, None], pa.int64()), "note": ["a", "b"]})
    _apply_to_postgres(postgres_url, table_name, second, "d2", "d1")
    assert rows_of(postgres_url, table_name) == [(1, None, "a"), (3, None, "b")]


@pytest.mark.integration
def test_postgres_existing_empty_table_gets_every_column(postgres_url: str, table_name: str) -> None:
    """A table made by someone else may have column defaults: its all-NULL columns are copied as NULL."""
    with psycopg.connect(postgres_url, autocommit=True) as con:
        con.execute(f"CREATE TABLE \"{table_name}\" (k bigint, value bigint, note text DEFAULT 'default')")
    rows = pa.table({"k": [1], "value": [10], "note": pa.array([None], pa.string())})
    _apply_to_postgres(postgres_url, table_name, rows, "d1", None)
    assert rows_of(postgres_url, table_name) == [(1, 10, None)]
