"""Where things live in a lake directory.

    LAKE/
      .lock                                  readers share it; a compaction swap takes it alone
      flows/date=2024-05-01/hour=13/part-*.parquet
      <other tables>/date=.../hour=.../part-*.parquet

Files are only ever added by renaming a finished temp file (``.*.tmp``) into place,
so anything named ``*.parquet`` is complete.
"""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from flowscope.errors import FlowscopeError

DEFAULT_LAKE = "./flowlake"
STAGED_PREFIX = "."
STAGED_SUFFIX = ".tmp"
"""A file being written or staged is ``.<name>.parquet.tmp`` beside its final ``<name>.parquet``."""
LAKE_ENV = "FLOWSCOPE_LAKE"


@dataclass(frozen=True)
class Lake:
    root: Path

    @classmethod
    def at(cls, path: str | os.PathLike[str] | None = None) -> Lake:
        """The lake at ``path``, else ``$FLOWSCOPE_LAKE``, else ``./flowlake``."""
        return cls(Path(path or os.environ.get(LAKE_ENV) or DEFAULT_LAKE))

    def existing(self) -> Lake:
        """This lake, or a ``FlowscopeError`` when its directory does not exist: a reader must not take a
        mistyped path for a lake without traffic (an existing lake without files is fine: it answers empty)."""
        if not self.root.is_dir():
            raise FlowscopeError(
                f"no lake at {self.root} (give the path with --lake or ${LAKE_ENV}; "
                "`flowscope read`, `collect` or `demo` create one)"
            )
        return self

    def table_dir(self, table: str) -> Path:
        return self.root / table

    def partition_dir(self, table: str, date: str, hour: int) -> Path:
        return self.root / table / f"date={date}" / f"hour={hour:02d}"

    def tables(self) -> list[str]:
        """Tables that hold at least one published file."""
        if not self.root.is_dir():
            return []
        return sorted(
            entry.name
            for entry in self.root.iterdir()
            if entry.is_dir() and not entry.name.startswith((".", "_")) and any(entry.rglob("*.parquet"))
        )

    def files(self, table: str) -> list[Path]:
        return sorted(self.table_dir(table).glob("date=*/hour=*/*.parquet"))

    def partitions(self, table: str) -> list[Path]:
        return sorted(p for p in self.table_dir(table).glob("date=*/hour=*") if p.is_dir())

    @contextmanager
    def _locked(self, mode: int) -> Iterator[None]:
        if mode == fcntl.LOCK_SH and not self.root.is_dir():
            yield  # nothing to protect, and a query should not create a lake
            return
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            handle = open(self.root / ".lock", "a")  # noqa: SIM115 (closed below)
        except OSError as exc:
            # A lake on a read-only mount, or one this user may not write: queries still read it. flock
            # works on a read-only descriptor; without a lock file no one can be compacting it either.
            if mode != fcntl.LOCK_SH or exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
                raise
            if not (self.root / ".lock").exists():
                yield
                return
            handle = open(self.root / ".lock")  # noqa: SIM115 (closed below)
        with handle:
            fcntl.flock(handle, mode)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def reading(self) -> AbstractContextManager[None]:
        """Held by queries, so a compaction never removes a file a query is about to open."""
        return self._locked(fcntl.LOCK_SH)

    def swapping(self) -> AbstractContextManager[None]:
        """Held only while compaction or retention replaces or removes published files."""
        return self._locked(fcntl.LOCK_EX)


def staging_path(final: Path) -> Path:
    """Where to write what ``publish`` will make ``final``: a hidden temporary beside it, or ``final`` itself when it
    is a device or a pipe (``-o /dev/null``, ``/dev/stdout``, a FIFO), which takes the bytes as they come: a file
    renamed over it would replace the device (as root, /dev/null once became a regular file that way)."""
    if final.exists() and not final.is_file():
        return final
    return final.with_name(f".{final.name}.tmp")


def publish(tmp: Path, final: Path) -> None:
    """Make a finished temp file visible atomically and durably (fsync file, rename, fsync directory); nothing
    to do when it was written in place (``staging_path``)."""
    if tmp == final:
        return
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.rename(tmp, final)
    fsync_dir(final.parent)


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
