"""``flowscope materialize``: keep a database table equal to a lake view."""

from __future__ import annotations

import click

from flowscope.cli.common import CliState, pass_state
from flowscope.materialize import run
from flowscope.materialize.run import Outcome
from flowscope.materialize.target import open_target
from flowscope.query.views import DERIVED_VIEWS, view_key


@click.command(
    epilog=f"""\b
Views with a known key: {", ".join(DERIVED_VIEWS)} (others need --key).
Targets: sqlite:///relative.db, sqlite:////abs/path.db, duckdb:///file.duckdb,
         postgresql://user@host:5432/db
Examples:
  flowscope materialize services_by_day --to sqlite:///services.db --table services
  flowscope materialize pairs --to postgresql://postgres@127.0.0.1/test --follow   # table pairs
"""
)
@click.argument("view")
@click.option("--to", "url", required=True, help="Target database URL.")
@click.option("--table", help="Target table, created with the view's key as primary key [default: the view's name].")
@click.option("--key", help="Comma-separated key columns (default: the derived view's key).")
@click.option("--follow", is_flag=True, help="Keep applying new lake data until interrupted.")
@click.option(
    "--interval", type=click.FloatRange(min=0.1), default=2.0, show_default=True, help="Seconds between checks."
)
@click.option(
    "--threads", type=click.IntRange(min=1), help="DuckDB threads for computing the view (default: all cores)."
)
@pass_state
def materialize(
    state: CliState,
    view: str,
    url: str,
    table: str | None,
    key: str | None,
    follow: bool,
    interval: float,
    threads: int | None,
) -> None:
    """Upsert a lake view into SQLite, DuckDB or PostgreSQL; re-runs and restarts never double count."""
    columns = tuple(k.strip() for k in key.split(",") if k.strip()) if key else view_key(view)
    table = table or view
    lake = state.lake.existing()  # before the target: a mistyped lake must not create a database file

    def report(outcome: Outcome) -> None:
        if outcome.applied.skipped:
            state.info(f"{table} already holds {view} for the lake's {outcome.state.files} files: nothing to do")
            return
        scope = "" if outcome.added_files is None else f" for the keys of {outcome.added_files} new file(s)"
        state.info(
            f"{view} -> {table}: {outcome.view_rows:,} rows{scope}, {outcome.applied.rows:,} inserted or changed, "
            f"{outcome.applied.deleted:,} deleted (lake: {outcome.state.files} files)"
        )
        state.detail(f"view computed in {outcome.view_seconds:.2f} s, applied in {outcome.apply_seconds:.2f} s")
        if outcome.empty_keys:
            state.console.print(f"[yellow]warning:[/] {outcome.empty_keys:,} view rows with an empty key not stored")

    target = open_target(url)
    try:
        report(run.materialize_once(lake, view, target, table, columns, threads=threads))
        if follow:
            state.info(f"following {lake.root} every {interval:g}s (Ctrl-C to stop)")
            run.follow(lake, view, target, table, columns, interval=interval, report=report, threads=threads)
    except KeyboardInterrupt as interrupt:  # each run is one transaction: the one under way is rolled back
        interrupt.add_note(f"{table}: the run under way was rolled back, runs before it stay applied")
        raise
    finally:
        target.close()
