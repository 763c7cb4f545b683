"""What a database target offers ``materialize``, and choosing one from a URL."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pyarrow as pa
import pyarrow.compute as pc

from flowscope.db.urls import shown_url
from flowscope.errors import FlowscopeError
from flowscope.sinks.files import check_output_file


@dataclass(frozen=True)
class LakeState:
    """Which lake files a view result was computed from."""

    digest: str
    """Of the view, its key, and every file's path and size: equal digests mean nothing changed."""
    sizes: Mapping[str, int]
    """Every published lake file (path relative to the lake) and its size."""

    @property
    def files(self) -> int:
        return len(self.sizes)


class Rows:
    """A view's rows as they are computed, in parts (every key in exactly one part; at least one part, maybe
    empty), read once: a target may load one part while the next is computed. Rows with a NULL key part are
    left out (they cannot be upserted) and counted in ``empty_keys``."""

    def __init__(self, parts: Iterable[pa.Table], ranges: bool, key: Sequence[str], view: str) -> None:
        self._parts = iter(parts)
        self.ranges = ranges
        """Whether each part is a range of the key, the parts in key order: sorting each part sorts them all."""
        self.key = tuple(key)
        self.view = view
        self.num_rows = 0
        """Rows handed over so far (all of them once read)."""
        self.empty_keys = 0
        self.seconds = 0.0
        """Spent computing the parts handed over (the rest of a target's time is its own)."""

    def __iter__(self) -> Iterator[pa.Table]:
        while True:
            started = time.perf_counter()
            part = next(self._parts, None)
            self.seconds += time.perf_counter() - started
            if part is None:
                return
            kept = self._keyed(part)
            self.num_rows += kept.num_rows
            self.empty_keys += part.num_rows - kept.num_rows
            yield kept

    def table(self) -> pa.Table:
        """Every part as one table (for a target that needs them all at once)."""
        return pa.concat_tables(list(self))

    def _keyed(self, table: pa.Table) -> pa.Table:
        """The rows with a complete key."""
        missing = [k for k in self.key if k not in table.column_names]
        if missing:
            raise FlowscopeError(f"view {self.view} has no column(s) {missing} for the key")
        if not any(table.column(name).null_count for name in self.key):
            return table  # the usual case: no copy of every column through a filter
        complete = pc.is_valid(table.column(self.key[0]))
        for name in self.key[1:]:
            complete = pc.and_(complete, pc.is_valid(table.column(name)))
        return table.filter(complete)


@dataclass(frozen=True)
class Change:
    """What one run applies to a target table."""

    table: str
    key: tuple[str, ...]
    rows: Rows
    view: str
    state: LakeState
    seen: str | None
    """The lake-state digest the table had when this run started (what ``rows`` were computed against)."""
    added: Mapping[str, int] | None = None
    """The files new since the last run when ``rows`` are only the view's rows for the keys those files hold;
    None when ``rows`` is the whole view."""

    def check_unchanged(self, recorded: str | None) -> None:
        """Inside the target's transaction, with the state row locked: another run may not have applied
        anything since this one started (its rows would be stale, or counted against a file list it never saw)."""
        if recorded != self.seen:
            raise FlowscopeError(f"{self.table} was updated by another materialize run meanwhile: nothing applied")

    def state_row(self) -> tuple[str, str, str, int, int, str]:
        """The values of ``upsert.STATE_UPSERT``: table, view, digest, file count, rows applied, time (once
        ``rows`` were read)."""
        now = dt.datetime.now(dt.UTC).isoformat()
        return (self.table, self.view, self.state.digest, self.state.files, self.rows.num_rows, now)

    def file_rows(self) -> list[tuple[str, str, int]]:
        """The ``upsert.FILES_TABLE`` rows to record: every lake file after a whole-view run (the old list is
        cleared first), the added ones after an incremental run."""
        files = self.state.sizes if self.added is None else self.added
        return [(self.table, path, size) for path, size in files.items()]


@dataclass
class Applied:
    rows: int = 0
    deleted: int = 0
    skipped: bool = False


class Target(Protocol):
    def applied_state(self, table: str) -> str | None:
        """The lake-state digest recorded by the last committed run for ``table``."""
        ...

    def applied_files(self, table: str, view: str) -> dict[str, int] | None:
        """The lake files (path -> size) ``table`` was last made equal to ``view`` for; None when the table is
        missing, or its record, or it was last made equal to another view (only a whole-view run can then
        make it equal)."""
        ...

    def loads_in_parts(self, table: str) -> bool:
        """Whether ``apply`` would load ``table``'s rows part by part as they are computed (a new PostgreSQL
        table); the others take them all at once, so the view is not split for them."""
        ...

    def apply(self, change: Change) -> Applied:
        """In one transaction: make the table equal ``change.rows`` (upsert, delete keys not among them) and
        record the lake state; or, with ``change.added``, upsert just those rows and record the state and the
        added files. An error while the rows are computed (read from ``change.rows``) leaves the table as it
        was."""
        ...

    def close(self) -> None: ...


def _file_path(url: str, scheme: str) -> Path:
    """``scheme:///relative/file`` or ``scheme:////absolute/file`` (the SQLAlchemy convention), in a directory
    that exists (``check_output_file``: a typo in it is an error, as for every file flowscope writes)."""
    rest = url[len(scheme) + 3 :]
    if not rest.startswith("/") or len(rest) < 2:
        raise FlowscopeError(f"{url}: use {scheme}:///relative/path or {scheme}:////absolute/path")
    return check_output_file(rest[1:])


def open_target(url: str) -> Target:
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme == "sqlite":
        from flowscope.materialize.sqlite import SqliteTarget

        return SqliteTarget(_file_path(url, "sqlite"))
    if scheme == "duckdb":
        from flowscope.materialize.duckdb_target import DuckdbTarget

        return DuckdbTarget(_file_path(url, "duckdb"))
    if scheme in ("postgresql", "postgres"):
        from flowscope.materialize.postgres import PostgresTarget

        return PostgresTarget(url)
    raise FlowscopeError(f"{shown_url(url)}: unknown target (use sqlite:///FILE, duckdb:///FILE or postgresql://...)")
