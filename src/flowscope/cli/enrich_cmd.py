"""``flowscope enrich``: enrich the flows already in the lake again, after the databases changed."""

from __future__ import annotations

import click

from flowscope.cli.common import CliState, pass_state, progress_bar
from flowscope.lake.maintenance import compact
from flowscope.schema import FLOWS
from flowscope.transforms.enrich import Enricher


@click.command(
    epilog="""\b
Every partition of the flows table is rewritten once (as `flowscope lake compact` does: queries see the
old files or the new one, never both) with the enrichment columns of FILE.toml (docs/ENRICH.md).
src_as/dst_as are filled again only where they are 0, unless the configuration sets overwrite_as.
Examples:
  flowscope enrich --enrich enrich.toml
"""
)
@click.option(
    "--enrich",
    "config",
    required=True,
    type=click.Path(dir_okay=False),
    metavar="FILE.toml",
    help="The enrichment configuration (databases, networks, interfaces, exporters).",
)
@pass_state
def enrich(state: CliState, config: str) -> None:
    """Re-enrich the stored flows with the current databases and files."""
    lake = state.lake.existing()
    enricher = Enricher.from_file(config)
    with progress_bar(state, "enriching", None) as update:
        result = compact(lake, FLOWS, reduce=enricher, progress=lambda done, total: update(completed=done, total=total))
    state.info(f"re-enriched {result.rows:,} flows in {result.partitions} partition(s)")
