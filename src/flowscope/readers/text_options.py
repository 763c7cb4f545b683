"""How line-oriented text inputs are read (flow CSVs, JSON lines, their live feeds on stdin or a websocket):
the typed options of the ``csv`` and ``jsonl`` readers.

The command line builds a ``TextOptions`` from ``--tz``, ``--strict``, ``--commit-rows`` and
``--commit-seconds`` (``flowscope.cli.options``); a program builds one directly. Values are checked
here, so a bad time zone is one clear error whatever the front end.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flowscope.errors import FlowscopeError

DEFAULT_COMMIT_ROWS = 1_000_000
DEFAULT_COMMIT_SECONDS = 5.0
STDIN = "-"


@dataclass(frozen=True)
class TextOptions:
    tz: str = "UTC"
    """IANA time zone of naive timestamps in the input."""
    strict: bool = False
    """Stop at the first unreadable row instead of counting it."""
    commit_rows: int = DEFAULT_COMMIT_ROWS
    """A live feed's batch (and the lake writer's buffer) holds at most this many rows."""
    commit_seconds: float = DEFAULT_COMMIT_SECONDS
    """A live feed's batch (and the lake writer's buffer) is handed on at least this often while rows arrive."""

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.tz)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise FlowscopeError(f"unknown time zone {self.tz!r} (use an IANA name such as Europe/Paris)") from exc
        if self.commit_rows < 1:
            raise FlowscopeError(f"--commit-rows must be at least 1, not {self.commit_rows}")
        if not self.commit_seconds > 0:
            raise FlowscopeError(f"--commit-seconds must be a positive number of seconds, not {self.commit_seconds}")

    def shaping(self) -> dict[str, object]:
        """What shapes the flows read: the time zone. ``strict`` only decides whether a bad row stops the read
        (a read that succeeds gives the same flows), and the commit limits only cut a live feed into batches."""
        return {"tz": self.tz}


def lake_limits(options: TextOptions, inputs: Sequence[str | Path]) -> dict[str, Any]:
    """``LakeWriter`` keyword arguments from the commit options.

    A live feed (``-``) is already cut into batches every N rows or T seconds by its
    reader, so each batch is committed as it arrives (``max_age=0``) rather than
    waiting for the next one, which may never come while the feed is idle.
    """
    live = any(str(path) == STDIN for path in inputs)
    return {"max_rows": options.commit_rows, "max_age": 0.0 if live else options.commit_seconds}
