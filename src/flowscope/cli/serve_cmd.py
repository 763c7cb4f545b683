"""``flowscope serve``: the web console and its JSON API over the lake or a ClickHouse or PostgreSQL server."""

from __future__ import annotations

import ipaddress
import os
import socket

import click

from flowscope.cli.common import CliState, pass_state
from flowscope.cli.options import transform_options, transforms_from
from flowscope.errors import FlowscopeError

TOKEN_ENV = "FLOWSCOPE_TOKEN"


def split_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for an IPv6 address) -> (host, port)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536 or not host:
        raise FlowscopeError(f"--listen takes HOST:PORT, e.g. 127.0.0.1:8080, not {listen!r}")
    return host.removeprefix("[").removesuffix("]"), int(port)


def bind_listen(host: str, port: int) -> socket.socket:
    """The console's listening socket, bound before the console is announced: a port already in use is one
    ``error:`` line, where uvicorn, binding it itself, printed "console on http://..." and then its own
    ``ERROR: [Errno 98]`` line and exited 3."""
    try:
        return socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET)
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)  # create_server appends the address
        raise FlowscopeError(f"cannot listen on {host}:{port}: {reason.lower()}") from exc


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.command(
    epilog=f"""\b
The console binds 127.0.0.1 unless told otherwise; any other address needs a
token (--token or ${TOKEN_ENV}), which browsers present once as ?token=... and
API clients as 'Authorization: Bearer ...'. The API schema is at /openapi.json.
Examples:
  flowscope serve                                  http://127.0.0.1:8080/
  FLOWSCOPE_TOKEN=s3cret flowscope serve --listen 0.0.0.0:8080
  curl -s 'http://127.0.0.1:8080/api/top?by=port&since=6h&filter=proto%20=%20udp'
  flowscope serve --ingest &  curl --data-binary @flows.csv 'http://127.0.0.1:8080/api/ingest/csv?reduce=pairs'
  flowscope serve --from clickhouse://127.0.0.1:9000/flows     the same console over ClickHouse
"""
)
@click.option("--listen", default="127.0.0.1:8080", show_default=True, metavar="HOST:PORT")
@click.option("--token", envvar=TOKEN_ENV, help=f"Required from every client (env {TOKEN_ENV}).")
@click.option(
    "--query-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=10.0,
    show_default=True,
    help="Seconds a query may run.",
)
@click.option(
    "--max-rows", type=click.IntRange(min=1), default=100_000, show_default=True, help="Rows a query may return."
)
@click.option("--threads", type=click.IntRange(min=1), help="DuckDB threads per query (default: all cores).")
@click.option(
    "--from",
    "source",
    default="lake",
    show_default=True,
    metavar="SOURCE",
    help="Where the flows are: lake, clickhouse://HOST:9000/DB or postgresql://USER@HOST/DB (exporter health "
    "still comes from the lake, when there is one).",
)
@click.option("--ingest", is_flag=True, help="Accept flow files into the lake: POST /api/ingest/FORMAT.")
@click.option(
    "--max-ingest-mib", type=click.IntRange(min=1), default=256, show_default=True, help="Largest body --ingest takes."
)
@transform_options
@pass_state
def serve(
    state: CliState,
    listen: str,
    token: str | None,
    query_timeout: float,
    max_rows: int,
    threads: int | None,
    source: str,
    ingest: bool,
    max_ingest_mib: int,
    enrich: str | None,
    anonymize: str | None,
) -> None:
    """A web console for the lake (or a database server): traffic over time, Sankey, top-N, flow search,
    exporters, store."""
    import uvicorn

    from flowscope.query.dialects import dialect_for
    from flowscope.web.app import create_app
    from flowscope.web.queries import LakeQueries, Queries, StoreQueries

    flags = {"enrich": enrich, "anonymize": anonymize}
    if not ingest and (enrich or anonymize):
        raise FlowscopeError("--enrich and --anonymize apply to what --ingest stores: add --ingest")
    transforms = transforms_from(flags)  # built once: databases loaded, the key read, before serving
    host, port = split_listen(listen)
    if not is_loopback(host) and not token:
        raise FlowscopeError(f"--listen {listen} is reachable from other machines: give --token or ${TOKEN_ENV}")
    queries: Queries
    if dialect_for(source).name == "lake":
        queries = LakeQueries(state.lake.existing(), timeout_s=query_timeout, max_rows=max_rows, threads=threads)
    else:
        if ingest:
            raise FlowscopeError("--ingest writes to the lake; it cannot be combined with --from a database")
        lake = state.lake if state.lake.root.is_dir() else None
        queries = StoreQueries(source, timeout_s=query_timeout, max_rows=max_rows, lake=lake)
        queries.run("SELECT 1 AS ok", {})  # an unreachable server is one error now, not one per page
    app = create_app(
        queries, token=token, ingest_max_bytes=max_ingest_mib << 20 if ingest else None, ingest_transforms=transforms
    )
    listening = bind_listen(host, port)
    state.info(f"flowscope console on http://{listen}/ ({queries.shown()}); Ctrl-C stops it")
    log_level = "warning" if state.verbosity < 1 else "info"
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, lifespan="off", log_level=log_level))
    try:  # uvicorn drains the connections on Ctrl-C, then raises it again: here that is the normal end
        server.run(sockets=[listening])
    except KeyboardInterrupt:
        state.info("stopped")
