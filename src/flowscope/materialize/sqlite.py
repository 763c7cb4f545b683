"""SQLite target: rows staged in a temporary table, then upsert, in one IMMEDIATE transaction.

SQLite's Python driver binds values row by row, so this target turns each staged row
into a tuple (dates and timestamps as ISO text); PostgreSQL and DuckDB targets do not.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from flowscope.errors import FlowscopeError
from flowscope.materialize import upsert
from flowscope.materialize.columns import with_text_addresses
from flowscope.materialize.target import Applied, Change
from flowscope.materialize.upsert import TableSpec, quote

STAGE = "flowscope_stage"
INSERT_CHUNK_ROWS = 100_000


def sqlite_type(arrow_type: pa.DataType) -> str:
    if pa.types.is_integer(arrow_type) or pa.types.is_boolean(arrow_type):
        return "INTEGER"
    if pa.types.is_floating(arrow_type):
        return "REAL"
    if pa.types.is_binary(arrow_type) or pa.types.is_fixed_size_binary(arrow_type):
        return "BLOB"
    return "TEXT"


def _bindable(column: pa.ChunkedArray | pa.Array) -> list[object]:
    """Values SQLite can bind: dates and timestamps become ISO 8601 text."""
    kind = column.type
    if pa.types.is_date(kind):
        column = pc.strftime(column.cast(pa.timestamp("s")), format="%Y-%m-%d")
    elif pa.types.is_timestamp(kind):  # Arrow's %S carries the fraction (all stored digits)
        column = pc.strftime(column, format="%Y-%m-%dT%H:%M:%SZ" if kind.tz else "%Y-%m-%dT%H:%M:%S")
    return column.to_pylist()


class SqliteTarget:
    def __init__(self, path: Path) -> None:
        if path.parent and not path.parent.is_dir():
            raise FlowscopeError(f"{path}: directory {path.parent} does not exist")
        self.con = sqlite3.connect(path, isolation_level=None, timeout=30)
        self.con.execute(upsert.STATE_CREATE)
        self.con.execute(upsert.FILES_CREATE)

    def applied_state(self, table: str) -> str | None:
        row = self.con.execute(upsert.STATE_SELECT.format(p="?"), (table,)).fetchone()
        return None if row is None else row[0]

    def applied_files(self, table: str, view: str) -> dict[str, int] | None:
        exists = self.con.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone()
        return None if exists is None else upsert.applied_files(self.con, "?", table, view)

    def apply(self, change: Change) -> Applied:
        table, key, added = change.table, change.key, change.added
        rows = with_text_addresses(change.rows)
        spec = TableSpec(table, [(f.name, sqlite_type(f.type)) for f in rows.schema], key)
        placeholders = ", ".join("?" for _ in spec.names)
        cursor = self.con.cursor()
        cursor.execute("BEGIN IMMEDIATE")
        try:
            change.check_unchanged(self.applied_state(table))
            cursor.execute(upsert.create_sql(spec))
            existing = [r[1] for r in cursor.execute(f"PRAGMA table_info({quote(table)})").fetchall()]
            if existing != spec.names:
                raise FlowscopeError(
                    f"table {table} exists with columns {existing}, not {spec.names}: drop it or pick --table"
                )
            cursor.execute(f"DROP TABLE IF EXISTS temp.{quote(STAGE)}")
            cursor.execute(upsert.create_sql(spec, temporary=True, name=STAGE))
            for batch in rows.to_batches(max_chunksize=INSERT_CHUNK_ROWS):
                values = zip(*(_bindable(column) for column in batch.columns), strict=True)
                cursor.executemany(f"INSERT INTO temp.{quote(STAGE)} VALUES ({placeholders})", values)
            # Indexed after loading: SQLite's anti-join for vanished keys would otherwise scan the stage per row.
            key_list = ", ".join(quote(k) for k in spec.key)
            cursor.execute(f"CREATE UNIQUE INDEX temp.{quote(STAGE + '_key')} ON {quote(STAGE)} ({key_list})")
            cursor.execute(upsert.upsert_sql(spec, STAGE, differs="IS NOT"))
            changed = cursor.rowcount
            deleted = 0
            if added is None:
                cursor.execute(upsert.delete_missing_sql(spec, STAGE))
                deleted = cursor.rowcount
            cursor.execute(f"DROP TABLE temp.{quote(STAGE)}")
            upsert.record_run(cursor, "?", change)
            cursor.execute("COMMIT")
        except BaseException:
            cursor.execute("ROLLBACK")
            raise
        return Applied(rows=changed, deleted=deleted)

    def close(self) -> None:
        self.con.close()
