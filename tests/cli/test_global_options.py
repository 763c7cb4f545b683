"""``--lake``, ``-v``, ``-q`` and ``--debug`` before or after a command's name (and a subcommand's)."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from flowscope.cli import COMMANDS, main
from flowscope.lake.layout import LAKE_ENV

GLOBAL = ("--lake", "-v", "--verbose", "-q", "--quiet", "--debug")
COUNT = "SELECT count(*) AS n FROM flows"


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env)


def every_command() -> list[tuple[str, click.Command]]:
    """Each command by its path (``lake info``), subcommands of groups included, as the group loads them."""
    found = []
    for name in COMMANDS:
        command = main.get_command(click.Context(main), name)
        assert command is not None
        found.append((name, command))
        if isinstance(command, click.Group):
            found += [(f"{name} {sub}", subcommand) for sub, subcommand in command.commands.items()]
    return found


@pytest.mark.parametrize(
    "args",
    [
        ["query", "--lake", "{lake}", COUNT, "--format", "csv"],
        ["query", COUNT, "--format", "csv", "--lake", "{lake}"],
        ["top", "--format", "csv", "--lake", "{lake}", "-n", "1"],
        ["--lake", "/nonexistent/lake", "query", "--lake", "{lake}", COUNT, "--format", "csv"],  # the later wins
    ],
)
def test_lake_after_the_command(small_lake: Path, args: list[str]) -> None:
    result = run(*(arg.format(lake=small_lake) for arg in args))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1].startswith("240" if "query" in args else '"10.0.0.')


def test_lake_after_a_subcommand_and_after_its_group(small_lake: Path) -> None:
    for args in (["lake", "info", "--lake", str(small_lake)], ["lake", "--lake", str(small_lake), "info"]):
        result = run(*args)
        assert result.exit_code == 0, result.output
        assert "flows" in result.stdout and "240" in result.stdout


def test_the_environment_still_names_the_lake(small_lake: Path) -> None:
    result = run("query", COUNT, "--format", "csv", env={LAKE_ENV: str(small_lake)})
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1] == "240"


def test_verbose_and_quiet_after_the_command(small_lake: Path, tmp_path: Path) -> None:
    verbose = run("--lake", str(small_lake), "top", "--format", "csv", "-v")
    assert "SELECT" in verbose.stderr  # -v shows the report's SQL
    out = str(tmp_path / "n.csv")
    said = run("query", COUNT, "-o", out, "--format", "csv", "--lake", str(small_lake))
    assert said.stderr.strip() == f"1 rows -> {out}"
    quiet = run("query", COUNT, "-o", out, "--format", "csv", "--lake", str(small_lake), "-q")
    assert quiet.exit_code == 0 and quiet.stderr == ""
    quiet_wins = run("-q", "query", COUNT, "-o", out, "--format", "csv", "--lake", str(small_lake), "-vv")
    assert quiet_wins.stderr == ""


def test_debug_after_the_command_shows_the_traceback(small_lake: Path) -> None:
    clean = run("--lake", str(small_lake), "query", "SELECT nope FROM flows")
    assert clean.exit_code == 2 and clean.stderr.startswith("error: Binder Error")
    debug = run("--lake", str(small_lake), "query", "SELECT nope FROM flows", "--debug")
    assert debug.exit_code == 1 and type(debug.exception).__name__ == "BinderException"


@pytest.mark.parametrize(("path", "command"), every_command())
def test_every_command_takes_the_global_options_once_and_lists_them(path: str, command: click.Command) -> None:
    options = [opt for param in command.params for opt in param.opts + param.secondary_opts]
    assert sorted(opt for opt in options if opt in GLOBAL) == sorted(GLOBAL)
    assert len(options) == len(set(options)), f"{path}: an option of its own clashes with a global one"
    shown = run(*path.split(), "--help")
    assert shown.exit_code == 0
    for option in ("--lake PATH", "-v, --verbose", "-q, --quiet", "--debug"):
        assert option in shown.stdout


def test_a_mistyped_command_is_offered_the_right_one() -> None:
    result = run("tpo")
    assert result.exit_code == 2 and "No such command 'tpo'. Did you mean 'top'?" in result.stderr
