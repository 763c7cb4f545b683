"""PostgreSQL: flowscope's flow tables rendered from the column catalogue, created and checked.

- ``flows``: every catalogue flow column with the catalogue's PostgreSQL type (``schema.postgres_columns``:
  addresses ``inet``, times ``timestamptz``), range-partitioned by day of ``time_received`` (one partition
  ``flows_pYYYYMMDD`` per UTC day, created when rows for it arrive, dropped by retention). ``time_received``
  is the partition key and cannot be null: a record without one gets the time it was stored.
- ``flows_5m``: the 5-minute roll-up (slot of ``time_received``, ``src_as``, ``dst_as``, ``etype``; unknown
  AS numbers and EtherTypes as 0, as in flow-pipeline) with the sums of ``bytes`` and ``packets`` and the
  number of flows, kept up to date in the transaction that stores the flows.
- ``rollup_1m``, ``rollup_5m``, ``rollup_1h``: the lake's roll-ups (``transforms.rollups.stores``), also kept
  in the transaction that stores the flows. Retention is the writer's (``sinks.postgres``: ``retention_days``
  drops day partitions of ``flows``, ``rollup_retention_days`` deletes older roll-up rows).
- ``flowscope_positions``: stream positions (e.g. Kafka ``topic/partition`` -> offset) committed with the
  rows they stand for, so a consumer restarts exactly where the stored data ends.

``init`` creates what is missing and never drops: a missing column is added, a column someone changed is
one error naming it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from flowscope.db.urls import shown_url
from flowscope.errors import FlowscopeError
from flowscope.materialize.upsert import quote
from flowscope.schema import FLOWS, column, postgres_columns

FLOWS_TABLE = "flows"
ROLLUP_TABLE = "flows_5m"
POSITIONS_TABLE = "flowscope_positions"
PARTITION_KEY = "time_received"
ROLLUP_SECONDS = 300
SCHEMES = ("postgresql://", "postgres://")

_ROLLUP_KEYS = ("src_as", "dst_as", "etype")


@dataclass(frozen=True)
class PostgresURL:
    """A libpq URL plus flowscope's own query parameters (taken out before connecting)."""

    conninfo: str
    params: Mapping[str, str] = field(default_factory=dict)

    OWN = ("batch_rows", "retention_days", "rollup_retention_days", "retry_seconds", "replay_rows")

    @classmethod
    def parse(cls, url: str) -> PostgresURL:
        if not url.startswith(SCHEMES):
            raise FlowscopeError(f"not a PostgreSQL URL: {shown_url(url)!r} (expected postgresql://USER@HOST:5432/DB)")
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        own = {k: v for k, v in query if k in cls.OWN}
        rest = [(k, v) for k, v in query if k not in cls.OWN]
        return cls(urlunsplit(parts._replace(query=urlencode(rest))), own)

    @property
    def shown(self) -> str:
        """The URL without its password."""
        return shown_url(self.conninfo)


def connect(url: PostgresURL, application: str = "flowscope") -> Any:
    """A psycopg connection; an unreachable server or a refused login is one clear error."""
    import psycopg

    try:
        return psycopg.connect(url.conninfo, application_name=application, connect_timeout=10)
    except psycopg.OperationalError as exc:
        message = " ".join(str(exc).split())
        if "password authentication failed" in message or ("role" in message and "does not exist" in message):
            raise FlowscopeError(f"PostgreSQL at {url.shown} refused the login: {message}") from None
        raise FlowscopeError(f"cannot connect to PostgreSQL at {url.shown}: {message}") from None


def flows_columns() -> list[tuple[str, str]]:
    return postgres_columns(FLOWS)


def rollup_columns() -> list[tuple[str, str]]:
    keys = []
    for name in _ROLLUP_KEYS:
        c = column(name, FLOWS)
        assert c is not None
        keys.append((name, c.postgres))
    sums = [("bytes", "bigint"), ("packets", "bigint"), ("flows", "bigint")]
    return [("slot", "timestamp with time zone"), *keys, *sums]


def flows_ddl() -> str:
    columns = ", ".join(
        f"{quote(name)} {kind}{' NOT NULL' if name == PARTITION_KEY else ''}" for name, kind in flows_columns()
    )
    return f"CREATE TABLE IF NOT EXISTS {quote(FLOWS_TABLE)} ({columns}) PARTITION BY RANGE ({quote(PARTITION_KEY)})"


def rollup_ddl() -> str:
    columns = ", ".join(f"{quote(name)} {kind} NOT NULL" for name, kind in rollup_columns())
    key = ", ".join(quote(name) for name in ("slot", *_ROLLUP_KEYS))
    return f"CREATE TABLE IF NOT EXISTS {quote(ROLLUP_TABLE)} ({columns}, PRIMARY KEY ({key}))"


def rollup_upsert(stage: str) -> str:
    """Add the ``flows_5m`` rows staged in ``stage`` to ``flows_5m``."""
    names = [name for name, _ in rollup_columns()]
    listed = ", ".join(quote(name) for name in names)
    key = ", ".join(quote(name) for name in names[:4])
    sums = ", ".join(f"{quote(name)} = {quote(ROLLUP_TABLE)}.{quote(name)} + excluded.{quote(name)}"
                     for name in names[4:])  # fmt: skip
    table = quote(ROLLUP_TABLE)
    return f"INSERT INTO {table} ({listed}) SELECT {listed} FROM {stage} ON CONFLICT ({key}) DO UPDATE SET {sums}"


POSITIONS_DDL = (
    f"CREATE TABLE IF NOT EXISTS {POSITIONS_TABLE} (stream text PRIMARY KEY, position jsonb NOT NULL, "
    "updated timestamp with time zone NOT NULL DEFAULT now())"
)


def partition_name(day: date) -> str:
    return f"{FLOWS_TABLE}_p{day:%Y%m%d}"


def create_partitions(cursor: Any, days: list[date]) -> None:
    """The day partitions of ``flows`` for ``days`` (those missing; another writer may create one first)."""
    for day in days:
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {quote(partition_name(day))} PARTITION OF {quote(FLOWS_TABLE)} "
            f"FOR VALUES FROM ('{start.isoformat()}') TO ('{(start + timedelta(days=1)).isoformat()}')"
        )


def drop_partitions_before(cursor: Any, day: date) -> list[str]:
    """Drop the day partitions of ``flows`` older than ``day`` (retention); returns their names."""
    rows = cursor.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass",
        (quote(FLOWS_TABLE),),
    ).fetchall()
    dropped = []
    for (name,) in rows:
        match = re.fullmatch(rf"{FLOWS_TABLE}_p(\d{{8}})", name)
        if match and datetime.strptime(match.group(1), "%Y%m%d").date() < day:
            cursor.execute(f"DROP TABLE {quote(name)}")
            dropped.append(name)
    return dropped


def rollup_tables() -> list[tuple[str, str]]:
    """(table, its time column) of every roll-up: ``flows_5m``, then the lake's ``rollup_*``."""
    from flowscope.transforms.rollups import stores

    return [(ROLLUP_TABLE, "slot"), *((stores.store_table(r.name), "time") for r in stores.store_rollups())]


def delete_rollups_before(cursor: Any, day: date, tables: list[tuple[str, str]]) -> int:
    """Delete the rows of roll-up ``tables`` ((table, time column), as ``rollup_tables``) whose bucket starts
    before ``day`` (retention; a row of unknown time stays); returns how many. Their time column leads their
    key, so this is an index range scan (nothing to do: an index probe)."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    deleted = 0
    for table, time_column in tables:
        deleted += cursor.execute(f"DELETE FROM {quote(table)} WHERE {quote(time_column)} < %s", (start,)).rowcount
    return deleted


def existing_columns(cursor: Any, table: str) -> dict[str, str]:
    rows = cursor.execute(
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped",
        (quote(table),),
    ).fetchall()
    return dict(rows)


@dataclass
class InitReport:
    created: list[str] = field(default_factory=list)
    added_columns: list[str] = field(default_factory=list)


def ensure_tables(cursor: Any, url: PostgresURL) -> InitReport:
    """Create what is missing, add missing columns, refuse changed ones (one error naming the column)."""
    from flowscope.transforms.rollups import stores

    report = InitReport()
    rollups = [
        (
            stores.store_table(r.name),
            stores.postgres_table_ddl(r),
            stores.postgres_columns(r),
            stores.postgres_backfill(r),
        )
        for r in stores.store_rollups()
    ]
    for table, ddl, expected, backfill in (
        (FLOWS_TABLE, flows_ddl(), flows_columns(), None),
        (ROLLUP_TABLE, rollup_ddl(), rollup_columns(), None),
        (POSITIONS_TABLE, POSITIONS_DDL, None, None),
        *rollups,
    ):
        found = existing_columns(cursor, table)
        if not found:
            cursor.execute(ddl)
            report.created.append(f"table {table}")
            if backfill is not None:  # the lake's roll-ups of the flows already stored (none in a new database)
                cursor.execute(backfill)
            continue
        for name, kind in expected or ():
            if name not in found:
                cursor.execute(f"ALTER TABLE {quote(table)} ADD COLUMN {quote(name)} {kind}")
                report.added_columns.append(f"{table}.{name}")
            elif found[name] != kind:
                raise FlowscopeError(
                    f"PostgreSQL at {url.shown}: column {table}.{name} is {found[name]}, flowscope writes {kind} "
                    "(changed by someone else? change it back or use another database)"
                )
    return report


def init(url: PostgresURL) -> InitReport:
    """``flowscope db init postgresql://...``: the tables, in one transaction."""
    with connect(url) as con, con.transaction(), con.cursor() as cursor:
        return ensure_tables(cursor, url)


def read_positions(url: str | PostgresURL) -> dict[str, Any]:
    """The stream positions committed with the stored flows (``{}`` before any)."""
    target = url if isinstance(url, PostgresURL) else PostgresURL.parse(url)
    with connect(target) as con, con.cursor() as cursor:
        if cursor.execute("SELECT to_regclass(%s)", (POSITIONS_TABLE,)).fetchone()[0] is None:
            return {}
        return dict(cursor.execute(f"SELECT stream, position FROM {POSITIONS_TABLE}").fetchall())
