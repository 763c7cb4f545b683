"""The SQL every target runs in one transaction: stage the view's rows, upsert them, delete vanished keys,
and record which lake state (digest and files) was applied.

Rows are upserted by assignment (``SET col = excluded.col``), never by addition, and
only where a value changed; so re-applying the same lake state changes nothing and a
run that dies before its commit leaves the table as the previous run left it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flowscope.materialize.target import Change

STATE_TABLE = "flowscope_materialized"


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class TableSpec:
    name: str
    columns: Sequence[tuple[str, str]]
    """(column name, SQL type) in order."""
    key: Sequence[str]

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.columns]


def create_sql(spec: TableSpec, *, temporary: bool = False, name: str | None = None, keyed: bool = True) -> str:
    """CREATE TABLE with the key as primary key (``keyed=False``: without, for adding it after a bulk load)."""
    columns = ", ".join(f"{quote(c)} {t}" for c, t in spec.columns)
    if temporary or not keyed:
        return f"CREATE {'TEMP ' if temporary else ''}TABLE {quote(name or spec.name)} ({columns})"
    key = ", ".join(quote(k) for k in spec.key)
    return f"CREATE TABLE IF NOT EXISTS {quote(spec.name)} ({columns}, PRIMARY KEY ({key}))"


def upsert_sql(spec: TableSpec, staging: str, *, differs: str = "IS DISTINCT FROM") -> str:
    """INSERT ... ON CONFLICT (key) DO UPDATE, touching only rows whose values changed."""
    names = ", ".join(quote(c) for c in spec.names)
    values = [c for c in spec.names if c not in spec.key]
    key = ", ".join(quote(k) for k in spec.key)
    target = quote(spec.name)
    # "WHERE true" keeps SQLite from reading ON CONFLICT as a join constraint.
    insert = f"INSERT INTO {target} ({names}) SELECT {names} FROM {quote(staging)} WHERE true ON CONFLICT ({key})"
    if not values:
        return f"{insert} DO NOTHING"
    assignments = ", ".join(f"{quote(c)} = excluded.{quote(c)}" for c in values)
    changed = " OR ".join(f"{target}.{quote(c)} {differs} excluded.{quote(c)}" for c in values)
    return f"{insert} DO UPDATE SET {assignments} WHERE {changed}"


def delete_missing_sql(spec: TableSpec, staging: str) -> str:
    """Remove rows whose key is no longer in the view."""
    target = quote(spec.name)
    match = " AND ".join(f"s.{quote(k)} = {target}.{quote(k)}" for k in spec.key)
    return f"DELETE FROM {target} WHERE NOT EXISTS (SELECT 1 FROM {quote(staging)} AS s WHERE {match})"


STATE_CREATE = (
    f"CREATE TABLE IF NOT EXISTS {STATE_TABLE} (target_table TEXT PRIMARY KEY, view_name TEXT NOT NULL, "
    "lake_state TEXT NOT NULL, lake_files BIGINT NOT NULL, view_rows BIGINT NOT NULL, applied_at TEXT NOT NULL)"
)
STATE_SELECT = f"SELECT lake_state FROM {STATE_TABLE} WHERE target_table = {{p}}"
STATE_UPSERT = (
    f"INSERT INTO {STATE_TABLE} (target_table, view_name, lake_state, lake_files, view_rows, applied_at) "
    "VALUES ({p}, {p}, {p}, {p}, {p}, {p}) ON CONFLICT (target_table) DO UPDATE SET view_name = excluded.view_name, "
    "lake_state = excluded.lake_state, lake_files = excluded.lake_files, view_rows = excluded.view_rows, "
    "applied_at = excluded.applied_at"
)

FILES_TABLE = "flowscope_materialized_files"
FILES_CREATE = (
    f"CREATE TABLE IF NOT EXISTS {FILES_TABLE} (target_table TEXT NOT NULL, path TEXT NOT NULL, "
    "size BIGINT NOT NULL, PRIMARY KEY (target_table, path))"
)
FILES_SELECT = f"SELECT path, size FROM {FILES_TABLE} WHERE target_table = {{p}}"
FILES_CLEAR = f"DELETE FROM {FILES_TABLE} WHERE target_table = {{p}}"
FILES_INSERT = (
    f"INSERT INTO {FILES_TABLE} (target_table, path, size) VALUES ({{p}}, {{p}}, {{p}}) "
    "ON CONFLICT (target_table, path) DO UPDATE SET size = excluded.size"
)
STATE_VIEW = f"SELECT view_name FROM {STATE_TABLE} WHERE target_table = {{p}}"


def applied_files(con: Any, p: str, table: str, view: str) -> dict[str, int] | None:
    """The lake files recorded for ``table`` when its last run applied ``view``, else None (``con``: a DB-API
    style connection whose ``execute`` takes placeholder ``p``)."""
    recorded = con.execute(STATE_VIEW.format(p=p), (table,)).fetchall()
    if not recorded or recorded[0][0] != view:
        return None
    return dict(con.execute(FILES_SELECT.format(p=p), (table,)).fetchall())


def record_run(cursor: Any, p: str, change: Change) -> None:
    """Inside the run's transaction: the state row and the lake files ``change`` leaves its table at (a DB-API
    cursor whose ``execute`` takes placeholder ``p``)."""
    cursor.execute(STATE_UPSERT.format(p=p), change.state_row())
    if change.added is None:
        cursor.execute(FILES_CLEAR.format(p=p), (change.table,))
    cursor.executemany(FILES_INSERT.format(p=p), change.file_rows())
