"""What a database target offers ``materialize``, and choosing one from a URL."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pyarrow as pa

from flowscope.errors import FlowscopeError


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

    def apply(
        self,
        table: str,
        key: tuple[str, ...],
        rows: pa.Table,
        view: str,
        state: LakeState,
        added: Mapping[str, int] | None = None,
    ) -> Applied:
        """In one transaction: make ``table`` equal ``rows`` (upsert, delete keys not in ``rows``) and record
        ``state``; or, with ``added`` (the files new since the last run), upsert ``rows`` (the view's rows for
        the keys those files hold) and record ``state`` and the added files."""
        ...

    def close(self) -> None: ...


def _file_path(url: str, scheme: str) -> Path:
    """``scheme:///relative/file`` or ``scheme:////absolute/file`` (the SQLAlchemy convention)."""
    rest = url[len(scheme) + 3 :]
    if not rest.startswith("/") or len(rest) < 2:
        raise FlowscopeError(f"{url}: use {scheme}:///relative/path or {scheme}:////absolute/path")
    return Path(rest[1:])


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
    raise FlowscopeError(f"{url}: unknown target (use sqlite:///FILE, duckdb:///FILE or postgresql://...)")
