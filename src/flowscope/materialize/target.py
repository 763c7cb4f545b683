"""What a database target offers ``materialize``, and choosing one from a URL."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pyarrow as pa

from flowscope.errors import FlowscopeError


@dataclass(frozen=True)
class LakeState:
    """Which lake files a view result was computed from (a digest of their names and sizes)."""

    digest: str
    files: int


@dataclass
class Applied:
    rows: int = 0
    deleted: int = 0
    skipped: bool = False


class Target(Protocol):
    def applied_state(self, table: str) -> str | None:
        """The lake-state digest recorded by the last committed run for ``table``."""
        ...

    def apply(self, table: str, key: tuple[str, ...], rows: pa.Table, view: str, state: LakeState) -> Applied:
        """Make ``table`` equal ``rows`` (upsert + delete) and record ``state``, in one transaction."""
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
