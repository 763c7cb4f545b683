"""``flowscope top``: the first canned report — top talkers, ports and protocols."""

from __future__ import annotations

from datetime import datetime

import click
import duckdb

from flowscope.cli.common import CliState, TimeParam, check_time_range, only_reading, pass_state
from flowscope.cli.output import anonymize_flag, emit, result_anonymizer, result_options
from flowscope.query import open_lake, tables_named, views_named
from flowscope.query.dialects import dialect_for
from flowscope.query.filter_language import compile_filter
from flowscope.query.reports.top import GROUPING_COLUMNS, GROUPINGS, METRICS, top_sql
from flowscope.schema import FLOWS
from flowscope.sinks.files import STDOUT
from flowscope.stopping import ctrl_c_calls
from flowscope.transforms.rollups.choose import Choice, choose_store_table, choose_table


@click.command(
    epilog="""\b
Each flow counts its whole volume (both directions of a biflow, scaled by its sampling rate) for its key;
--by host counts every flow for both of its endpoints (nfdump -s ip). Answers from a roll-up
when one can (flowscope rollup; -v says which table).
Examples:
  flowscope top                                  top 10 sources by bytes
  flowscope top --by port --metric flows --since 1d
  flowscope top --by port --filter "src_addr << 10.0.0.0/8 and proto in (tcp, udp)"
  flowscope top --by pair -n 20 --where "proto = 6" --since 2024-05-01 --until 2024-05-02
  flowscope top --by dst-as --from clickhouse://127.0.0.1:9000/flows   the same report on ClickHouse
"""
)
@click.option("--by", "grouping", type=click.Choice(sorted(GROUPINGS)), default="src", show_default=True)
@click.option("--metric", type=click.Choice(METRICS), default="bytes", show_default=True)
@click.option("-n", "--count", type=click.IntRange(min=1), default=10, show_default=True, help="How many rows.")
@click.option("--since", type=TimeParam(), help="Flows starting at or after (ISO time, epoch, or 6h/2d ago).")
@click.option("--until", type=TimeParam(), help="Flows starting before.")
@click.option("--filter", "flow_filter", metavar="EXPR", help="Flows to count, in the filter language (FILTERS.md).")
@click.option("--where", "where", help='Raw SQL condition on flows (the escape hatch), e.g. "ip_ttl > 60".')
@click.option(
    "--from",
    "source",
    default="lake",
    show_default=True,
    metavar="SOURCE",
    help="Where the flows are: lake, clickhouse://HOST:9000/DB or postgresql://USER@HOST/DB "
    "(--where is then in that database's SQL).",
)
@result_options
@click.option("--threads", type=click.IntRange(min=1), help="DuckDB threads (default: all cores).")
@anonymize_flag()
@pass_state
@only_reading
def top(
    state: CliState,
    grouping: str,
    metric: str,
    count: int,
    since: datetime | None,
    until: datetime | None,
    flow_filter: str | None,
    where: str | None,
    source: str,
    file_format: str,
    output: str | None,
    threads: int | None,
    anonymize: str | None,
) -> None:
    """Top talkers, conversations, ports, protocols or ASes by bytes, packets or flows."""
    check_time_range(since, until)
    transform = result_anonymizer(anonymize)
    title = f"top {count} by {grouping} ({metric})"
    if source != "lake":
        from flowscope.query.stores import run_sql, table_names

        dialect = dialect_for(source)
        selected = compile_filter(flow_filter, dialect=dialect)
        conditions = _conditions(where, selected.sql if flow_filter else None)
        choice = (
            Choice(FLOWS, "a filter needs the raw flows")
            if conditions
            else choose_store_table(GROUPING_COLUMNS[grouping], since=since, until=until, tables=table_names(source))
        )
        state.detail(f"answered from {choice.table}: {choice.why}")
        sql = top_sql(
            grouping, metric, count, since=since, until=until, where=conditions, table=choice.table,
            covers=choice.covers, dialect=dialect,
        )  # fmt: skip
        state.detail(sql)
        result = duckdb.connect().from_arrow(run_sql(source, sql, selected.params))
        rows = emit(result, file_format, output, limit=count, title=title, transform=transform)
    else:
        lake = state.lake.existing()
        selected = compile_filter(flow_filter)
        conditions = _conditions(where, selected.sql if flow_filter else None)
        choice = choose_table(lake, GROUPING_COLUMNS[grouping], since=since, until=until, where=conditions)
        state.detail(f"answered from {choice.table}: {choice.why}")
        sql = top_sql(
            grouping,
            metric,
            count,
            since=since,
            until=until,
            where=conditions,
            table=choice.table,
            covers=choice.covers,
        )
        state.detail(sql)
        views, tables = views_named(sql), tables_named(sql)  # --where's too
        with open_lake(lake, threads=threads, views=views, tables=tables) as con, ctrl_c_calls(con.interrupt):
            rows = emit(
                con.sql(sql, params=selected.params), file_format, output, limit=count, title=title, transform=transform
            )
        if not rows and (since or until or conditions):  # an empty table read as "nothing was stored"
            state.info("note: no flows in the lake match; `flowscope lake info` shows the days it holds")
    if output:  # as query says it
        state.info(f"{rows:,} rows -> {'standard output' if output == STDOUT else output}")


def _conditions(*conditions: str | None) -> str | None:
    """The given SQL conditions, all of which must hold (None: no condition)."""
    return " AND ".join(f"({c})" for c in conditions if c) or None
