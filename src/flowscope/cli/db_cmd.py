"""``flowscope db``: create the tables flowscope writes in a database server."""

from __future__ import annotations

import click

from flowscope.cli.common import CliState, pass_state
from flowscope.db.urls import shown_url
from flowscope.errors import FlowscopeError


@click.group()
def db() -> None:
    """Database servers flowscope writes to (ClickHouse, PostgreSQL)."""


@db.command(
    epilog="""\b
Re-running adds what is missing and never drops anything; a column someone changed is an error.
Examples:
  flowscope db init clickhouse://127.0.0.1:9000/flows
  flowscope db init clickhouse://user:secret@ch1:9000/flows --raw-ttl-days 30 --rollup-ttl-days 400
  flowscope db init postgresql://postgres@127.0.0.1:5432/flows
  flowscope db init clickhouse://127.0.0.1:9000/flows --kafka 127.0.0.1:9092/flows
  flowscope db init clickhouse://ch1:9000/flows --cluster flows     replicated tables on every node + Distributed
  flowscope db init clickhouse://ch1:9000/flows --cluster flows --print    the statements, nothing run
"""
)
@click.argument("url")
@click.option(
    "--raw-ttl-days", type=click.IntRange(min=1), help="ClickHouse: keep flows_raw rows this many days (TTL)."
)
@click.option(
    "--rollup-ttl-days",
    type=click.IntRange(min=1),
    help="ClickHouse: keep flows_5m and rollup_1m/5m/1h rows this many days (TTL; needs --raw-ttl-days, no longer).",
)
@click.option(
    "--kafka",
    metavar="BROKER/TOPIC",
    help="ClickHouse: also a Kafka-engine table and a view into flows_raw, so the server pulls GoFlow2 "
    "FlowMessages itself (Protobuf; JSONEachRow on servers without it).",
)
@click.option(
    "--cluster",
    metavar="NAME",
    help="ClickHouse: the cluster (remote_servers) to create on: ReplicatedMergeTree tables *_local on every node "
    "and Distributed flows_raw/flows_5m over them, ON CLUSTER (docs/SCALING.md).",
)
@click.option("--print", "print_only", is_flag=True, help="ClickHouse: print the statements instead of running them.")
@pass_state
def init(
    state: CliState,
    url: str,
    raw_ttl_days: int | None,
    rollup_ttl_days: int | None,
    kafka: str | None,
    cluster: str | None,
    print_only: bool,
) -> None:
    """Create the flow tables: flows_raw, flows_5m and its view (ClickHouse); flows, flows_5m and
    flowscope_positions (PostgreSQL)."""
    if url.startswith(("postgresql://", "postgres://")):
        if cluster or print_only:
            raise FlowscopeError("--cluster and --print are ClickHouse options")
        if raw_ttl_days or rollup_ttl_days:
            raise FlowscopeError(
                "PostgreSQL has no TTL: its writer applies retention, postgresql://...?retention_days=D"
                "&rollup_retention_days=R (docs/STORES.md)"
            )
        from flowscope.db import postgres

        postgres_url = postgres.PostgresURL.parse(url)
        done = postgres.init(postgres_url)
        for what in done.created:
            state.info(f"created {what}")
        for what in done.added_columns:
            state.info(f"added column {what}")
        if not done.created and not done.added_columns:
            state.info(f"PostgreSQL at {postgres_url.shown}: up to date")
        return
    if not url.startswith("clickhouse://"):
        raise FlowscopeError(f"db init knows clickhouse:// and postgresql:// URLs, not {shown_url(url)!r}")
    from flowscope.db import clickhouse

    target = clickhouse.ClickHouseURL.parse(url)
    if cluster is not None:
        if kafka is not None:
            raise FlowscopeError("--kafka and --cluster together are not supported: create the Kafka table per node")
        ttls = {"raw_ttl_days": raw_ttl_days, "rollup_ttl_days": rollup_ttl_days}
        if print_only:
            click.echo(";\n\n".join(clickhouse.cluster_ddl(target.database, cluster, **ttls)) + ";")
            return
        for what in clickhouse.init_cluster(target, cluster, **ttls).created:
            state.info(f"created {what}")
        state.info(f"{target.where}: database {target.database} is set up on cluster {cluster}")
        return
    if print_only:
        click.echo(";\n\n".join(clickhouse.single_node_ddl(target.database, raw_ttl_days, rollup_ttl_days)) + ";")
        return
    report = clickhouse.init(target, raw_ttl_days=raw_ttl_days, rollup_ttl_days=rollup_ttl_days, kafka=kafka)
    for what in report.created:
        state.info(f"created {what}")
    for what in report.added_columns:
        state.info(f"added column {what}")
    for note in report.notes:
        state.console.print(f"[yellow]note:[/] {note}", markup=True, highlight=False)
    if not report.created and not report.added_columns:
        state.info(f"{target.where}: database {target.database} is up to date")


@db.command(name="flow-proto")
def flow_proto() -> None:
    """Print the flow.proto the Kafka-engine table reads (GoFlow2's FlowMessage fields the catalogue maps)."""
    from flowscope.db.clickhouse_kafka import flow_proto as render

    click.echo(render(), nl=False)
