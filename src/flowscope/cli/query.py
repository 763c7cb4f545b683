"""``flowscope query``: SQL over the lake."""

from __future__ import annotations

import click

from flowscope.cli.common import CliState, OutputFile, pass_state
from flowscope.cli.output import OUTPUT_FORMATS, anonymize_flag, emit, result_anonymizer
from flowscope.errors import FlowscopeError
from flowscope.query import open_lake, views_named


@click.command(
    epilog="""\b
Views: flows (+ date, hour partition columns), one per other lake table, and the derived
views pairs, conversations, services_by_day (created when the SQL names them).
Helpers: ip_text(addr), ip('10.0.0.1'), in_cidr(addr, '10.0.0.0/8'), mac_text(mac), proto_name(p),
scaled(bytes, sampling_rate), sampling_known(sampling_rate), service_net(addr).
Examples:
  flowscope query "SELECT count(*), sum(bytes) FROM flows"
  flowscope query "SELECT ip_text(src_addr) src, sum(bytes) b FROM flows
      WHERE in_cidr(src_addr, '2001:db8::/32') GROUP BY src ORDER BY b DESC LIMIT 5"
  flowscope query "SELECT * FROM flows WHERE date = today()" --format parquet -o today.parquet
"""
)
@click.argument("sql")
@click.option("--format", "file_format", type=click.Choice(OUTPUT_FORMATS), default="table", show_default=True)
@click.option("-o", "--output", type=OutputFile(), help="Write to this file instead of stdout.")
@click.option(
    "--limit", type=click.IntRange(min=1), default=1000, show_default=True, help="Rows shown by --format table."
)
@click.option("--threads", type=click.IntRange(min=1), help="DuckDB threads (default: all cores).")
@anonymize_flag()
@pass_state
def query(
    state: CliState,
    sql: str,
    file_format: str,
    output: str | None,
    limit: int,
    threads: int | None,
    anonymize: str | None,
) -> None:
    """Run SQL (DuckDB dialect) over the flow lake."""
    transform = result_anonymizer(anonymize)
    with open_lake(state.lake, threads=threads, views=views_named(sql)) as con:
        result = con.sql(sql)
        if result is None:  # DuckDB's answer to SQL that is empty or only comments (was an AttributeError)
            raise FlowscopeError(f"no SQL statement in {sql!r}")
        rows = emit(result, file_format, output, limit=limit, transform=transform)
    if output:
        state.info(f"{rows:,} rows -> {output}")
