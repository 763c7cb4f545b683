"""``flowscope rollup``: bring the roll-up tables (``flows_1m``, ``flows_5m``, ``flows_1h``) up to date."""

from __future__ import annotations

import click

from flowscope.cli.common import CliState, pass_state, progress_bar
from flowscope.transforms.rollups.build import maintain


@click.command(
    epilog="""\b
Each roll-up keeps its own retention and dimensions (defaults: exporter, EtherType, protocol, ASes,
interfaces; no addresses, no ports); change them in LAKE/rollups.toml (docs/ROLLUPS.md).
`flowscope top` answers from the coarsest roll-up that can (-v says which).
Examples:
  flowscope rollup                    recompute the hours whose raw flows changed, drop expired days
  flowscope rollup --rebuild          recompute everything from the raw flows
Run it periodically (cron, a systemd timer) beside a collector.
"""
)
@click.option("--rebuild", is_flag=True, help="Drop the roll-ups and recompute them from the raw flows.")
@pass_state
def rollup(state: CliState, rebuild: bool) -> None:
    """Keep the roll-up tables equal to a GROUP BY over the raw flows (incrementally)."""
    lake = state.lake.existing()
    with progress_bar(state, "rolling up", None) as update:
        results = maintain(
            lake,
            rebuild=rebuild,
            progress=lambda name, done, total: update(description=name, completed=done, total=total),
        )
    for result in results:
        # maintain() reports a first build and a changed definition alike (transforms/rollups/build.py)
        rebuilt = " (computed afresh: first run, or its definition changed)" if result.rebuilt and not rebuild else ""
        expired = f", {len(result.expired)} expired day(s) removed" if result.expired else ""
        state.info(f"{result.name}: {len(result.updated)} partition(s) recomputed{expired}{rebuilt}")
