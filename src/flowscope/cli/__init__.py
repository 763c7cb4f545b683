"""The ``flowscope`` command line: one group, one module per command."""

from __future__ import annotations

import importlib
import sys

import click

from flowscope import __version__
from flowscope.cli.common import CliState, run_cleanly
from flowscope.lake.layout import DEFAULT_LAKE, LAKE_ENV

# Command name -> the module of flowscope.cli that defines it (as a function of the same name).
# A command's module is imported only when that command runs (or --help lists it), so one
# command does not pay for every other command's imports.
COMMANDS = {
    "capture": "capture_cmds",
    "collect": "collect_cmds",
    "demo": "demo",
    "exporters": "collect_cmds",
    "lake": "lake_cmd",
    "materialize": "materialize_cmd",
    "profile": "profile_cmd",
    "query": "query",
    "read": "read",
    "templates": "collect_cmds",
    "top": "top",
    "watch": "capture_cmds",
}

EPILOG = """\b
Examples:
  flowscope demo                                  fill ./flowlake with synthetic traffic
  flowscope top --by src -n 10 --since 6h         heaviest sources of the last six hours
  flowscope query "SELECT proto, sum(bytes) FROM flows GROUP BY 1"
  flowscope --lake /data/lake query "SELECT ip_text(src_addr), count(*) FROM flows
      WHERE in_cidr(dst_addr, '10.0.0.0/8') GROUP BY 1" --format csv -o out.csv
"""


class FlowscopeGroup(click.Group):
    """Runs every command through ``run_cleanly``: user errors as one line, no traceback unless --debug.

    Commands in ``COMMANDS`` are loaded on first use.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS and cmd_name not in self.commands:
            module = importlib.import_module(f"flowscope.cli.{COMMANDS[cmd_name]}")
            self.add_command(getattr(module, cmd_name), cmd_name)
        return self.commands.get(cmd_name)

    def invoke(self, ctx: click.Context) -> object:
        debug = "--debug" in sys.argv[1:] or bool(ctx.params.get("debug"))
        return run_cleanly(lambda: super(FlowscopeGroup, self).invoke(ctx), debug=debug)


@click.group(cls=FlowscopeGroup, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--lake",
    "lake_path",
    envvar=LAKE_ENV,
    default=DEFAULT_LAKE,
    show_default=True,
    type=click.Path(file_okay=False),
    help=f"Flow lake directory (env {LAKE_ENV}).",
)
@click.option("-v", "--verbose", count=True, help="More detail (repeatable).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors and requested output.")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.version_option(__version__, prog_name="flowscope")
@click.pass_context
def main(ctx: click.Context, lake_path: str, verbose: int, quiet: bool, debug: bool) -> None:
    """flowscope: collect, meter, read, store and query network flows."""
    ctx.obj = CliState(lake_path=lake_path, verbosity=-1 if quiet else verbose, debug=debug)

