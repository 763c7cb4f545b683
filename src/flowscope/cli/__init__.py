"""The ``flowscope`` command line: one group, one module per command."""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any, cast

import click

import flowscope.cli.startup  # noqa: F401  (first: settles Arrow's allocator before pyarrow loads)
from flowscope import __version__
from flowscope.cli.common import CliState, run_cleanly
from flowscope.lake.layout import DEFAULT_LAKE, LAKE_ENV
from flowscope.memory import leave_out_pandas

# Command name -> the module of flowscope.cli that defines it (as a function of the same name).
# A command's module is imported only when that command runs (--help reads its short help from the
# module's source), so one command does not pay for every other command's imports.
COMMANDS = {
    "capture": "capture_cmds",
    "collect": "collect_cmds",
    "consume": "consume_cmd",
    "db": "db_cmd",
    "demo": "demo",
    "enrich": "enrich_cmd",
    "exporters": "collect_cmds",
    "lake": "lake_cmd",
    "materialize": "materialize_cmd",
    "mock": "mock_cmd",
    "profile": "profile_cmd",
    "query": "query",
    "read": "read",
    "rollup": "rollup_cmd",
    "serve": "serve_cmd",
    "spark": "spark_cmd",
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
  flowscope top --by port -v --lake /data/lake   global options also after the command
"""


def _store(ctx: click.Context, param: click.Parameter, value: object) -> None:
    """Put a given global option into the shared ``CliState``: the one made for the group, which
    every command's context finds (a command run on its own gets its own)."""
    if not value:  # not given here: a command's copy has no default, so it keeps what the group set
        return
    state = ctx.ensure_object(CliState)
    if param.name == "verbose":
        state.verbose += cast(int, value)  # a count
    else:
        setattr(state, str(param.name), value)


def global_options(*, on_command: bool) -> list[click.Option]:
    """``--lake``, ``-v``, ``-q``, ``--debug``: for the group (with the default and the environment
    variable) or for a command, where they are given after its name and listed in its --help."""
    lake_source: dict[str, Any] = {} if on_command else {"envvar": LAKE_ENV, "default": DEFAULT_LAKE}
    stored: dict[str, Any] = {"expose_value": False, "callback": _store}
    return [
        click.Option(
            ["--lake", "lake_path"],
            type=click.Path(file_okay=False),
            metavar="PATH",
            help=f"Flow lake directory (env {LAKE_ENV}; default {DEFAULT_LAKE}).",
            **lake_source,
            **stored,
        ),
        click.Option(["-v", "--verbose"], count=True, help="More detail (repeatable).", **stored),
        click.Option(["-q", "--quiet"], is_flag=True, help="Only errors and requested output.", **stored),
        click.Option(["--debug"], is_flag=True, help="Show tracebacks.", **stored),
    ]


def accept_global_options(command: click.Command) -> None:
    """Let ``command`` take the global options after its name (a group such as ``lake``: it and every
    subcommand), so ``flowscope query --lake X ...`` and ``flowscope lake info -v`` work."""
    command.params.extend(global_options(on_command=True))
    if isinstance(command, click.Group):
        for subcommand in command.commands.values():
            accept_global_options(subcommand)


class FlowscopeGroup(click.Group):
    """Runs every command through ``run_cleanly``: user errors as one line, no traceback unless --debug.

    Commands in ``COMMANDS`` are loaded on first use; each takes the global options after its name too.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.extend(global_options(on_command=False))

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS and cmd_name not in self.commands:
            module = importlib.import_module(f"flowscope.cli.{COMMANDS[cmd_name]}")
            self.add_command(getattr(module, cmd_name), cmd_name)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """click's listing of the commands and their short help, a command not loaded yet described by
        ``_described``: importing every command's module (DuckDB, rich, numpy, pyarrow) made ``flowscope --help``
        the slowest command of all (0.62 CPU s, now 0.14; BENCHMARKS.md, "Start-up of every command")."""
        commands: list[tuple[str, click.Command]] = []
        for name in self.list_commands(ctx):
            command = self.commands.get(name) or _described(name) or self.get_command(ctx, name)
            if command is not None:
                commands.append((name, command))
        limit = formatter.width - 6 - max(len(name) for name, _ in commands)
        with formatter.section("Commands"):
            formatter.write_dl([(name, command.get_short_help_str(limit)) for name, command in commands])

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        """click's, with "Did you mean" drawn from every command: click offers only the loaded ones (none here)."""
        try:
            return super().resolve_command(ctx, args)
        except click.exceptions.NoSuchCommand as exc:
            raise click.exceptions.NoSuchCommand(args[0], possibilities=self.list_commands(ctx), ctx=ctx) from exc

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        accept_global_options(cmd)
        super().add_command(cmd, name)

    def invoke(self, ctx: click.Context) -> object:
        def debug() -> bool:
            state = ctx.find_object(CliState)
            return state is not None and state.debug

        return run_cleanly(lambda: super(FlowscopeGroup, self).invoke(ctx), debug=debug)


def _described(name: str) -> click.Command | None:
    """A stand-in for the command ``name`` that only carries its help, the docstring of the function of that
    name in its module (``COMMANDS``), read from the source rather than by importing the module; None where the
    source is not installed (bytecode only: the module is then imported)."""
    source = _module_source(COMMANDS[name])
    if source is None:
        return None
    function = next(node for node in source.body if isinstance(node, ast.FunctionDef) and node.name == name)
    return click.Command(name, help=ast.get_docstring(function))


@functools.cache
def _module_source(module: str) -> ast.Module | None:
    spec = importlib.util.find_spec(f"flowscope.cli.{module}")
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        return None
    return ast.parse(Path(spec.origin).read_text(encoding="utf-8"))


@click.group(cls=FlowscopeGroup, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="flowscope")
@click.pass_context
def main(ctx: click.Context) -> None:
    """flowscope: collect, meter, read, store and query network flows."""
    ctx.ensure_object(CliState)


def run() -> None:
    """The ``flowscope`` executable (and ``python -m flowscope``): the command line, without pandas."""
    _without_pandas(sys.argv[1:])
    main()


def _without_pandas(args: list[str]) -> None:
    """Where pandas is installed, pyarrow imports it at its first conversion of Python or numpy values, to see
    whether they are pandas objects: 0.25 s of every command's start-up on a quiet machine (1.5 s at load 14),
    for commands that never see one. So a command runs with pandas left out (``memory.leave_out_pandas``:
    pyarrow then takes it as not installed), unless something imported it already. ``spark`` keeps it:
    pyspark's Arrow paths check for pandas. Programs that import flowscope are untouched."""
    if "spark" not in args and "pandas" not in sys.modules:
        leave_out_pandas()
