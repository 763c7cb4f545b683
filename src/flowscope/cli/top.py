"""``flowscope top``: the first canned report — top talkers, ports and protocols."""

from __future__ import annotations

from datetime import datetime

import click
import duckdb

from flowscope.cli.common import CliState, TimeParam, pass_state
from flowscope.cli.output import OUTPUT_FORMATS, emit
from flowscope.query import open_lake, views_named
from flowscope.query.dialects import dialect_for
from flowscope.query.reports.top import GROUPINGS, METRICS, top_sql


@click.command(
    epilog="""\b
Each flow counts its whole volume (both directions of a biflow) for its key;
--by host counts every flow for both of its endpoints (nfdump -s ip).
Examples:
  flowscope top                                  top 10 sources by bytes
  flowscope top --by port --metric flows --since 1d
  flowscope top --by pair -n 20 --where "proto = 6" --since 2024-05-01 --until 2024-05-02
  flowscope top --by dst-as --from clickhouse://127.0.0.1:9000/flows   the same report on ClickHouse
"""
)
@click.option("--by", "grouping", type=click.Choice(sorted(GROUPINGS)), default="src", show_default=True)
@click.option("--metric", type=click.Choice(METRICS), default="bytes", show_default=True)
@click.option("-n", "--count", default=10, show_default=True, help="How many rows.")
@click.option("--since", type=TimeParam(), help="Flows starting at or after (ISO time, epoch, or 6h/2d ago).")
@click.option("--until", type=TimeParam(), help="Flows starting before.")
@click.option("--where", "where", help="Extra SQL filter on flows, e.g. \"in_cidr(src_addr, '10.0.0.0/8')\".")
@click.option(
    "--from",
    "source",
    default="lake",
    show_default=True,
    metavar="SOURCE",
    help="Where the flows are: lake, clickhouse://HOST:9000/DB or postgresql://USER@HOST/DB "
    "(--where is then in that database's SQL).",
)
@click.option("--format", "file_format", type=click.Choice(OUTPUT_FORMATS), default="table", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False))
@click.option("--threads", type=int, help="DuckDB threads (default: all cores).")
@pass_state
def top(
    state: CliState,
    grouping: str,
    metric: str,
    count: int,
    since: datetime | None,
    until: datetime | None,
    where: str | None,
    source: str,
    file_format: str,
    output: str | None,
    threads: int | None,
) -> None:
    """Top talkers, conversations, ports, protocols or ASes by bytes, packets or flows."""
    sql = top_sql(grouping, metric, count, since=since, until=until, where=where, dialect=dialect_for(source))
    state.detail(sql)
    title = f"top {count} by {grouping} ({metric})"
    if source != "lake":
        from flowscope.query.stores import run_sql

        result = run_sql(source, sql)
        emit(duckdb.connect().from_arrow(result), file_format, output, limit=count, title=title)
        return
    with open_lake(state.lake, threads=threads, views=views_named(sql)) as con:  # --where may name one
        emit(con.sql(sql), file_format, output, limit=count, title=title)
