"""The ingest ledger: which inputs a lake holds, committed together with their data.

    LAKE/_ledger/<UTC stamp>-<writer>.json     one record per commit

A commit record names the inputs the commit completes (content digest, size, the fingerprint
of the options that shaped the output), the stream positions it reaches (e.g. Kafka offsets)
and the data files it publishes. The commit protocol:

1. the data files are written and fsynced under hidden staged names (``.part-*.parquet.tmp``);
2. the commit record is written atomically (temp file, fsync, rename, fsync directory): the commit point;
3. the staged files are renamed into place.

A crash before 2 leaves only staged files, which ``recover`` deletes once their writer is gone (the
inputs were not recorded, so a rerun reads them again); a crash between 2 and 3 leaves staged files
that a record names, which ``recover`` renames into place (the inputs were recorded, so a rerun
skips them). Either way nothing is lost or published twice. ``recover`` runs whenever a lake sink
opens.

Recognising a repeat must not cost a full read of every input: an input is first known by its
size and a hash of its first and last MiB (``sample``); only when that matches a recorded input is
the whole content hashed to confirm. The full digest of a new input is computed beside the read
(``digest_in_background``: hashlib releases the GIL, so it takes the second core; SHA-256 ran at
1.3 GB/s here, i.e. 0.8 s per GB that would otherwise come before the read).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import socket
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from flowscope.errors import FlowscopeError
from flowscope.lake.layout import STAGED_PREFIX, STAGED_SUFFIX, Lake, fsync_dir
from flowscope.lake.writer import utc_stamp
from flowscope.pipeline import Checkpoint, InputRecord
from flowscope.scratch import alive

LEDGER_DIR = "_ledger"
SAMPLE_BYTES = 1 << 20
_digests = ThreadPoolExecutor(max_workers=1, thread_name_prefix="digest")


def sample_key(path: Path) -> tuple[int, str]:
    """(size, SHA-256 of the first and last MiB): cheap, and equal for every copy of one file."""
    try:
        size = path.stat().st_size
        hasher = hashlib.sha256()
        with open(path, "rb") as handle:
            hasher.update(handle.read(SAMPLE_BYTES))
            if size > SAMPLE_BYTES:
                handle.seek(max(SAMPLE_BYTES, size - SAMPLE_BYTES))
                hasher.update(handle.read(SAMPLE_BYTES))
    except OSError as exc:
        raise FlowscopeError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return size, hasher.hexdigest()


def content_digest(path: Path) -> str:
    """SHA-256 of the whole file."""
    try:
        with open(path, "rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError as exc:
        raise FlowscopeError(f"cannot read {path}: {exc.strerror or exc}") from exc


def digest_in_background(path: Path) -> Future[str]:
    return _digests.submit(content_digest, path)


@dataclass(frozen=True)
class Ingested:
    """A recorded input: where the ledger saw it first."""

    name: str
    committed: str
    record: str


class Ledger:
    """The commit records of one lake, read once when opened."""

    def __init__(self, lake: Lake) -> None:
        self.lake = lake
        self.folder = lake.root / LEDGER_DIR
        self._inputs: dict[tuple[int, str, str], list[tuple[str, Ingested]]] = {}
        self._positions: dict[str, Any] = {}
        self._sequence = itertools.count()
        for path, record in self._records():
            self._index(path.name, record)

    def _records(self) -> Iterable[tuple[Path, dict[str, Any]]]:
        if not self.folder.is_dir():
            return
        for path in sorted(self.folder.glob("*.json")):
            try:
                yield path, json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                raise FlowscopeError(f"ledger record {path} is unreadable ({exc})") from exc

    def _index(self, record_name: str, record: dict[str, Any]) -> None:
        for entry in record.get("inputs", ()):
            key = (entry["size"], entry["sample"], entry["options"])
            seen = Ingested(entry["name"], record.get("committed", ""), record_name)
            self._inputs.setdefault(key, []).append((entry["digest"], seen))
        self._positions.update(record.get("positions", {}))

    def find(self, path: Path, options: str) -> Ingested | None:
        """The recorded ingestion of this file's content read with these options, if any."""
        size, sample = sample_key(path)
        candidates = self._inputs.get((size, sample, options))
        if not candidates:
            return None
        digest = content_digest(path)
        return next((seen for recorded, seen in candidates if recorded == digest), None)

    def holds(self, record: InputRecord) -> Ingested | None:
        """The recorded ingestion of an input known by its record alone (e.g. generated data), if any."""
        candidates = self._inputs.get((record.size, record.sample, record.options), ())
        return next((seen for recorded, seen in candidates if recorded == record.digest), None)

    def positions(self) -> dict[str, Any]:
        """The latest committed stream positions (later commits win)."""
        return dict(self._positions)

    def commit(self, checkpoint: Checkpoint, files: Sequence[tuple[Path, Path]], writer: str) -> Path:
        """Write the commit record (the commit point); the caller renames the staged files after it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        committed = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        record = {
            "committed": committed,
            "inputs": [asdict(entry) for entry in checkpoint.inputs],
            "positions": checkpoint.positions,
            "files": [[self._relative(tmp), self._relative(final)] for tmp, final in files],
        }
        name = f"{utc_stamp()}-{writer}-{next(self._sequence):06d}.json"
        path = self.folder / name
        tmp = self.folder / f".{name}.tmp"
        with open(tmp, "w") as handle:
            json.dump(record, handle, separators=(",", ":"))
            handle.flush()
            os.fsync(handle.fileno())
        os.rename(tmp, path)
        fsync_dir(self.folder)
        self._index(name, record)
        return path

    def _relative(self, path: Path) -> str:
        return str(path.relative_to(self.lake.root))


def input_record(path: Path, options: str, digest: str) -> InputRecord:
    size, sample = sample_key(path)
    return InputRecord(name=str(path), digest=digest, size=size, sample=sample, options=options)


def recover(lake: Lake) -> tuple[int, int]:
    """Finish interrupted commits: publish staged files a record names, delete those of dead writers.

    Returns (files published, files deleted).
    """
    if not lake.root.is_dir():
        return 0, 0
    staged = [
        path
        for path in lake.root.glob(f"*/date=*/hour=*/{STAGED_PREFIX}part-*{STAGED_SUFFIX}")
        if path.name.endswith(f".parquet{STAGED_SUFFIX}")
    ]
    if not staged:
        return 0, 0
    named: dict[Path, Path] = {}
    folder = lake.root / LEDGER_DIR
    for record_path in sorted(folder.glob("*.json")) if folder.is_dir() else ():
        try:
            record = json.loads(record_path.read_text())
        except (OSError, ValueError):
            continue
        for tmp, final in record.get("files", ()):
            named[lake.root / tmp] = lake.root / final
    published = deleted = 0
    for path in staged:
        if path in named:
            os.rename(path, named[path])
            fsync_dir(path.parent)
            published += 1
        elif _writer_gone(path.name):
            path.unlink(missing_ok=True)
            deleted += 1
    return published, deleted


def _writer_gone(staged_name: str) -> bool:
    """Whether the process that wrote a staged file (``.part-<stamp>-<host>-<pid>-<id>-<seq>...``) has ended.

    Files of other hosts (a lake on shared storage) are left to their own host's writers.
    """
    parts = staged_name.split("-")
    if len(parts) < 6:
        return False
    host, pid = "-".join(parts[2:-3]), parts[-3]
    return host == socket.gethostname() and pid.isdigit() and not alive(int(pid))
