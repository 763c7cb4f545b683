"""``flowscope read`` options for flow CSVs and live feeds (``--tz``, ``--strict``, commit limits, ``--reduce``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click
import pyarrow as pa

from flowscope.csvflows.reader import DEFAULT_COMMIT_ROWS, DEFAULT_COMMIT_SECONDS
from flowscope.reduce import BUILTIN, transform

F = TypeVar("F", bound=Callable[..., Any])


def csv_options(command: F) -> F:
    """Adds the options; their values reach the reader's ``open(paths, options)``."""
    for option in reversed(
        (
            click.option("--tz", help="Time zone of naive timestamps in the input, e.g. America/Sao_Paulo [UTC]."),
            click.option("--strict", is_flag=True, help="Stop at the first unreadable row instead of counting it."),
            click.option(
                "--commit-rows",
                type=click.IntRange(min=1),
                help=f"Rows per lake commit, for files and stdin [{DEFAULT_COMMIT_ROWS:,}].",
            ),
            click.option(
                "--commit-seconds",
                type=click.FloatRange(min=0.01),
                help=f"Commit to the lake at least every T seconds while rows arrive [{DEFAULT_COMMIT_SECONDS:g}].",
            ),
            click.option(
                "--reduce",
                "reduce_name",
                metavar="NAME|FILE",
                help=f"Keyed reduction applied to each batch ({', '.join(BUILTIN)}, or a .toml/.json spec).",
            ),
        )
    ):
        command = option(command)
    return command


def lake_limits(options: Mapping[str, Any], inputs: Sequence[Path]) -> dict[str, Any]:
    """``LakeWriter`` keyword arguments from the commit options.

    A live feed (``-``) is already cut into batches every N rows or T seconds by its
    reader, so each batch is committed as it arrives (``max_age=0``) rather than
    waiting for the next one, which may never come while the feed is idle.
    """
    live = any(str(path) == "-" for path in inputs)
    return {
        "max_rows": options.get("commit_rows") or DEFAULT_COMMIT_ROWS,
        "max_age": 0.0 if live else options.get("commit_seconds") or DEFAULT_COMMIT_SECONDS,
    }


def ingest_transforms(options: Mapping[str, Any]) -> list[Callable[[pa.Table], pa.Table]]:
    name = options.get("reduce_name")
    return [transform(name)] if name else []
