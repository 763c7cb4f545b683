"""``flowscope query``: SQL over the lake."""

from __future__ import annotations

import sys

import click

from flowscope.cli.common import CliState, only_reading, pass_state
from flowscope.cli.output import anonymize_flag, emit, result_anonymizer, result_options
from flowscope.errors import FlowscopeError
from flowscope.query import open_lake, views_named
from flowscope.sinks.files import STDOUT
from flowscope.stopping import ctrl_c_calls


class SqlCommand(click.Command):
    """A command whose argument is SQL, which may start with a ``--`` comment: click would take that for an
    option (``No such option '-- top talkers...'``). An argument that starts with ``-`` and holds whitespace is
    no option (option names have none; ``--name=some value`` of a known option stays one), so it is passed on
    after ``--``, where click takes it as the argument, wherever it stands among the options."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, self._sql_last(ctx, args))

    def _sql_last(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:  # the user said where the options end
            return args
        names = {name for param in self.get_params(ctx) for name in (*param.opts, *param.secondary_opts)}
        valued = {
            name
            for param in self.get_params(ctx)
            if isinstance(param, click.Option) and not param.is_flag and not param.count
            for name in param.opts
        }
        rest: list[str] = []
        sql: list[str] = []
        value_next = False
        for arg in args:
            if not value_next and arg.startswith("-") and arg.partition("=")[0] not in names and _spaced(arg):
                sql.append(arg)
                continue
            rest.append(arg)
            value_next = not value_next and arg in valued
        return [*rest, "--", *sql] if sql else rest


def _spaced(text: str) -> bool:
    return any(char.isspace() for char in text)


@click.command(
    cls=SqlCommand,
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
  flowscope query - < report.sql                  the SQL from standard input (may start with -- comments)
""",
)
@click.argument("sql")
@result_options
@click.option(
    "--limit", type=click.IntRange(min=1), default=1000, show_default=True, help="Rows shown by --format table."
)
@click.option("--threads", type=click.IntRange(min=1), help="DuckDB threads (default: all cores).")
@anonymize_flag()
@pass_state
@only_reading
def query(
    state: CliState,
    sql: str,
    file_format: str,
    output: str | None,
    limit: int,
    threads: int | None,
    anonymize: str | None,
) -> None:
    """Run SQL (DuckDB dialect) over the flow lake; SQL - reads it from standard input."""
    if sql == "-":
        state.reading_stdin("SQL")
        sql = sys.stdin.read()
    transform = result_anonymizer(anonymize)
    with open_lake(state.lake, threads=threads, views=views_named(sql)) as con, ctrl_c_calls(con.interrupt):
        result = con.sql(sql)
        if result is None:  # DuckDB's answer to SQL that is empty or only comments (was an AttributeError)
            raise FlowscopeError(f"no SQL statement in {sql!r}")
        rows = emit(result, file_format, output, limit=limit, transform=transform)
    if output:
        state.info(f"{rows:,} rows -> {'standard output' if output == STDOUT else output}")
