"""``flowscope lake``: inspect and maintain the flow lake."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import click
from rich.markup import escape
from rich.table import Table

from flowscope.cli.common import CliState, pass_state, progress_bar
from flowscope.cli.output import result_console
from flowscope.lake.maintenance import SMALL_FILE_BYTES, compact, drop_before
from flowscope.query.store import table_summaries
from flowscope.reduce import transform
from flowscope.schema import FLOWS
from flowscope.transforms.rollups.build import STATE as ROLLUP_STATE
from flowscope.transforms.rollups.build import maintain
from flowscope.transforms.rollups.spec import NAMES as ROLLUP_TABLES


@click.group()
def lake() -> None:
    """Inspect and maintain the flow lake (info, compact, retain)."""


@lake.command()
@pass_state
def info(state: CliState) -> None:
    """Tables, partitions, files, rows and size."""
    lake = state.lake.existing()
    title = f"lake {lake.root}"
    view = Table(title=title, min_width=len(title))  # a long path widens the table rather than wrapping
    for column in ("table", "partitions", "files", "rows", "MiB", "first day", "last day"):
        view.add_column(column, justify="left" if column in ("table", "first day", "last day") else "right")
    summaries = table_summaries(lake)
    for s in summaries:
        size = f"{s.bytes / (1 << 20):,.1f}"
        view.add_row(s.table, f"{s.partitions:,}", f"{s.files:,}", f"{s.rows:,}", size, s.first_day, s.last_day)
    result_console().print(view)
    for s in summaries:
        if s.damaged:  # rows above count the readable files only
            damaged = f"{s.table}: {len(s.damaged)} damaged file(s) not counted, e.g. {s.damaged[0]}"
            state.console.print(f"[yellow]warning:[/] {escape(damaged)}")  # shown even with -q, as skips are


@lake.command(name="compact")
@click.option("--table", default="flows", show_default=True)
@click.option(
    "--small-mib",
    type=click.IntRange(min=1),
    default=SMALL_FILE_BYTES >> 20,
    show_default=True,
    help="Files below this are merged.",
)
@click.option(
    "--reduce",
    "reduction",
    help="Also apply a keyed reduction (a built-in name such as pairs, or a TOML/JSON spec) to every partition.",
)
@pass_state
def compact_command(state: CliState, table: str, small_mib: int, reduction: str | None) -> None:
    """Merge each partition's small files into one (safe while writers and queries run)."""
    lake = state.lake.existing()  # compaction would create a mistyped lake
    reduce = transform(reduction) if reduction else None
    with progress_bar(state, "compacting", None) as update:
        result = compact(
            lake,
            table,
            small_file_bytes=small_mib << 20,
            reduce=reduce,
            progress=lambda i, n: update(completed=i, total=n),
        )
    state.info(
        f"{result.partitions} partitions compacted: {result.files_before:,} -> {result.files_after:,} files "
        f"({result.rows:,} rows rewritten)"
    )
    if table == FLOWS and result.partitions and (lake.root / ROLLUP_STATE).exists():
        # the merged files have new names: their hours' roll-ups are recomputed now rather than left stale
        updated = sum(len(rollup.updated) for rollup in maintain(lake))
        state.info(f"{updated} roll-up partition(s) recomputed")


@lake.command()
@click.option("--days", type=click.IntRange(min=1), required=True, help="Keep this many days (today included).")
@pass_state
def retain(state: CliState, days: int) -> None:
    """Drop day partitions older than the retention period (roll-ups keep their own: `flowscope rollup`)."""
    cutoff = (datetime.now(UTC) - timedelta(days=days - 1)).date()
    lake = state.lake.existing()
    tables = [table for table in lake.tables() if table not in ROLLUP_TABLES]
    removed = drop_before(lake, cutoff, tables) if tables else []
    state.info(f"removed {len(removed)} day partition(s) before {cutoff}")
