"""PostgreSQL target, one transaction per run: binary COPY straight into a new or empty table, otherwise into a
temporary staging table followed by the upsert and the delete of vanished keys.

A new table is loaded while the view is still being computed (``_load_new``): each part of the view's rows is
COPYed by a thread of its own while this process merges the next part (the server, another process, parses
and stores it on the other core), and the primary key is built once after the last part. Where the parts are
ranges of the key (``Rows.ranges``) each is first sorted by the key, so the whole heap is in key order and the
index build's sort finds its input presorted. Measured on the 1.03 M ``pairs`` of the issue-17 lake (2 cores,
load 2-3 from another job): ADD PRIMARY KEY took 0.51-0.62 server CPU s on the sorted heap against 1.09-1.82 s
on the same rows in random order, for 0.2-0.3 client CPU s of sorting. Whole ``materialize`` processes against
the serial load before (medians of two series of 8 and 6 alternating rounds): server CPU 1.66 and 1.58 s
against 2.71 and 2.50 s, client CPU 3.53 and 3.19 s against 2.85 and 2.61 s (splitting, sorting, the copy
thread), wall 5.16 and 4.95 s against 5.50 and 4.92 s (the other core was busy: the overlap needs it free),
peak RSS 760-790 against 630-650 MiB. ``COPY ... (FREEZE)`` showed no difference in the COPY's server CPU
(within 1.0-2.3 s either way).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pyarrow as pa

from flowscope.db.postgres import PostgresURL, connect
from flowscope.errors import FlowscopeError
from flowscope.materialize import upsert
from flowscope.materialize.key_order import key_order
from flowscope.materialize.pgcopy import HEADER, TRAILER, encode_rows, pg_column
from flowscope.materialize.target import Applied, Change
from flowscope.materialize.upsert import TableSpec, quote

STAGE = "flowscope_stage"
COPY_CHUNK_ROWS = 100_000
INDEX_BUILD_MEMORY = "1GB"


def _columns(schema: pa.Schema) -> list[tuple[str, str]]:
    return [(field.name, pg_column(field).sql_type) for field in schema]


def _only_value(cursor: psycopg.Cursor) -> object:
    """The value a query without FROM (``SELECT to_regclass(...)``, ``SELECT EXISTS (...)``) returns."""
    row = cursor.fetchone()
    assert row is not None, "a SELECT without FROM returns exactly one row"
    return row[0]


class PostgresTarget:
    def __init__(self, url: str) -> None:
        self.con = connect(PostgresURL.parse(url), application="flowscope-materialize")
        with self.con.transaction():
            self.con.execute(upsert.STATE_CREATE)
            self.con.execute(upsert.FILES_CREATE)

    def applied_state(self, table: str) -> str | None:
        with self.con.transaction():
            row = self.con.execute(upsert.STATE_SELECT.format(p="%s"), (table,)).fetchone()
        return None if row is None else row[0]

    def applied_files(self, table: str, view: str) -> dict[str, int] | None:
        with self.con.transaction():
            if _only_value(self.con.execute("SELECT to_regclass(%s)", (quote(table),))) is None:
                return None
            return upsert.applied_files(self.con, "%s", table, view)

    def loads_in_parts(self, table: str) -> bool:
        with self.con.transaction():
            return _only_value(self.con.execute("SELECT to_regclass(%s)", (quote(table),))) is None

    def _existing_columns(self, table: str) -> list[tuple[str, str]]:
        """(name, type) of the table's columns, types spelled as ``pg_column`` spells them."""
        rows = self.con.execute(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            (quote(table),),
        ).fetchall()
        return [(name, kind) for name, kind in rows]

    def apply(self, change: Change) -> Applied:
        table, key, added = change.table, change.key, change.added
        try:
            with self.con.transaction(), self.con.cursor() as cursor:
                recorded = cursor.execute(upsert.STATE_SELECT.format(p="%s") + " FOR UPDATE", (table,)).fetchone()
                change.check_unchanged(recorded[0] if recorded else None)  # the row stays locked until commit
                cursor.execute("SELECT to_regclass(%s)", (quote(table),))
                if _only_value(cursor) is None:  # new table: load first, build the key's index once after
                    changed, deleted = self._load_new(cursor, change), 0
                else:
                    rows = change.rows.table()
                    spec = TableSpec(table, _columns(rows.schema), key)
                    changed, deleted = self._update(cursor, spec, rows, delete_missing=added is None)
                upsert.record_run(cursor, "%s", change)
        except psycopg.Error as exc:
            raise FlowscopeError(f"PostgreSQL: {str(exc).strip()}") from exc
        return Applied(rows=changed, deleted=deleted)

    def _load_new(self, cursor: psycopg.Cursor, change: Change) -> int:
        """Create the table and COPY the rows into it part by part as they are computed, each part's COPY in a
        thread of its own while the next part is computed; then build the key's index once (see the module's
        docstring). The rows handed over. An error while a part is computed waits for the COPY under way and
        rolls everything back with the transaction."""
        table = change.table
        parts = iter(change.rows)
        first = next(parts)
        cursor.execute(upsert.create_sql(TableSpec(table, _columns(first.schema), change.key), keyed=False))
        order_by = change.key if change.rows.ranges else ()
        with ThreadPoolExecutor(1, thread_name_prefix="flowscope-copy") as copier:
            copying = copier.submit(self._copy, cursor, table, first, created=True, order_by=order_by)
            for part in parts:
                copying.result()  # one part in flight: its error surfaces, memory stays bounded
                copying = copier.submit(self._copy, cursor, table, part, created=True, order_by=order_by)
            copying.result()
        cursor.execute(f"SET LOCAL maintenance_work_mem = '{INDEX_BUILD_MEMORY}'")  # sort in memory
        # Parallel workers only added CPU on the presorted heap: 0.65-0.82 s against 0.51-0.62 s (load 3).
        cursor.execute("SET LOCAL max_parallel_maintenance_workers = 0")
        cursor.execute(f"ALTER TABLE {quote(table)} ADD PRIMARY KEY ({', '.join(map(quote, change.key))})")
        return change.rows.num_rows

    def _update(
        self, cursor: psycopg.Cursor, spec: TableSpec, rows: pa.Table, *, delete_missing: bool
    ) -> tuple[int, int]:
        """Upsert ``rows`` into an existing table, deleting the keys not among them when ``delete_missing``:
        (rows inserted or changed, rows deleted)."""
        table = spec.name
        existing = self._existing_columns(table)
        if existing != list(spec.columns):
            shown = ", ".join(f"{name} {kind}" for name, kind in existing)
            wanted = ", ".join(f"{name} {kind}" for name, kind in spec.columns)
            raise FlowscopeError(f"table {table} exists as ({shown}), not ({wanted}): drop it or pick --table")
        cursor.execute(f"LOCK TABLE {quote(table)} IN SHARE ROW EXCLUSIVE MODE")
        cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {quote(table)})")
        if not _only_value(cursor):  # empty: COPY straight in, nothing to conflict with or delete
            self._copy(cursor, table, rows, created=False)
            return rows.num_rows, 0
        cursor.execute(upsert.create_sql(spec, temporary=True, name=STAGE) + " ON COMMIT DROP")
        self._copy(cursor, STAGE, rows, created=True)
        cursor.execute(f"ANALYZE {quote(STAGE)}")  # planner statistics for the joins below
        cursor.execute(upsert.upsert_sql(spec, STAGE))
        changed = cursor.rowcount
        if not delete_missing:
            return changed, 0
        cursor.execute(upsert.delete_missing_sql(spec, STAGE))
        return changed, cursor.rowcount

    @staticmethod
    def _copy(
        cursor: psycopg.Cursor, table: str, rows: pa.Table, *, created: bool, order_by: Sequence[str] = ()
    ) -> None:
        """Binary COPY of ``rows`` into ``table``, encoded chunk by chunk (``pgcopy``).

        Into a table this transaction ``created`` (no column defaults), the columns NULL in every row are left
        out of the COPY and the server stores NULL for them without reading a field: for ``pairs`` from a CSV
        lake (21 of 32 columns all NULL, 1.03 M rows) the COPY took 1.1-2.0 s instead of 2.2-2.6 s (load 4).
        An existing table may have defaults for them, so it gets every column. With ``order_by`` the rows are
        sorted by those columns first and written in that order (``encode_rows(keep_order=True)``). ``key_order``
        compares numbers by value and addresses by their 16 bytes: PostgreSQL's order but for IPv6 addresses
        below ::ffff:0:0 (which it puts after every IPv4 one) and text outside the C collation; there only the
        index build's speed differs."""
        if created and rows.num_rows:
            rows = rows.select([i for i, column in enumerate(rows.columns) if column.null_count < rows.num_rows])
        if order_by:
            rows = rows.take(key_order(rows, order_by))
        names = ", ".join(quote(name) for name in rows.column_names)
        with cursor.copy(f"COPY {quote(table)} ({names}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.write(HEADER)
            for batch in rows.to_batches(max_chunksize=COPY_CHUNK_ROWS):
                for part in encode_rows(pa.Table.from_batches([batch]), keep_order=bool(order_by)):
                    copy.write(part)
            copy.write(TRAILER)

    def close(self) -> None:
        self.con.close()
