"""DuckDB database-file target: the view's Arrow rows (addresses as text) are scanned in place and upserted in
one transaction."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa

from flowscope.errors import FlowscopeError
from flowscope.materialize import upsert
from flowscope.materialize.columns import with_text_addresses
from flowscope.materialize.target import Applied, Change
from flowscope.materialize.upsert import TableSpec, quote

STAGE = "flowscope_stage"


class DuckdbTarget:
    def __init__(self, path: Path) -> None:
        try:
            self.con = duckdb.connect(str(path))
        except duckdb.Error as exc:
            raise FlowscopeError(f"{path}: {str(exc).splitlines()[0]}") from exc
        self.con.execute("SET TimeZone = 'UTC'")
        self.con.execute(upsert.STATE_CREATE)
        self.con.execute(upsert.FILES_CREATE)

    def applied_state(self, table: str) -> str | None:
        rows = self.con.sql(upsert.STATE_SELECT.format(p="$1"), params=[table]).fetchall()
        return rows[0][0] if rows else None

    def _run(self, sql: str, params: list[object] | None = None) -> int:
        """Execute one statement to completion; the number of rows it changed (for DML)."""
        result = self.con.execute(sql, params or []).fetchall()
        return int(result[0][0]) if result and result[0] and isinstance(result[0][0], int) else 0

    def applied_files(self, table: str, view: str) -> dict[str, int] | None:
        exists = self.con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = ? AND schema_name = current_schema()", [table]
        ).fetchall()[0][0]
        return upsert.applied_files(self.con, "?", table, view) if exists else None

    def loads_in_parts(self, table: str) -> bool:
        return False

    def apply(self, change: Change) -> Applied:
        table, key, added = change.table, change.key, change.added
        rows = with_text_addresses(change.rows.table())
        self.con.register(STAGE, rows)
        try:
            staged = self.con.sql(f"SELECT * FROM {quote(STAGE)}")
            spec = TableSpec(table, [(n, str(t)) for n, t in zip(staged.columns, staged.types, strict=True)], key)
            self._run("BEGIN TRANSACTION")
            try:
                change.check_unchanged(self.applied_state(table))
                self._run(upsert.create_sql(spec))
                existing = [c for c in self.con.sql(f"SELECT * FROM {quote(table)} LIMIT 0").columns]
                if existing != spec.names:
                    raise FlowscopeError(
                        f"table {table} exists with columns {existing}, not {spec.names}: drop it or pick --table"
                    )
                changed = self._run(upsert.upsert_sql(spec, STAGE))
                deleted = self._run(upsert.delete_missing_sql(spec, STAGE)) if added is None else 0
                self._run(upsert.STATE_UPSERT.format(p="?"), list(change.state_row()))
                if added is None:
                    self._run(upsert.FILES_CLEAR.format(p="?"), [table])
                self._record_files(change.file_rows())  # not upsert.record_run: DuckDB's executemany is slow
                self._run("COMMIT")
            except BaseException:
                self._run("ROLLBACK")
                raise
        finally:
            self.con.unregister(STAGE)
        return Applied(rows=changed, deleted=deleted)

    def _record_files(self, rows: list[tuple[str, str, int]]) -> None:
        """The file rows as one Arrow table inserted at once (DuckDB's executemany is slow)."""
        tables, paths, sizes = zip(*rows, strict=True) if rows else ((), (), ())
        listed = pa.table(
            {"target_table": pa.array(tables, pa.string()), "path": pa.array(paths, pa.string()),
             "size": pa.array(sizes, pa.int64())}
        )  # fmt: skip
        self.con.register("flowscope_files", listed)
        try:
            self._run(
                f"INSERT INTO {upsert.FILES_TABLE} SELECT target_table, path, size FROM flowscope_files "
                "ON CONFLICT (target_table, path) DO UPDATE SET size = excluded.size"
            )
        finally:
            self.con.unregister("flowscope_files")

    def close(self) -> None:
        self.con.close()
