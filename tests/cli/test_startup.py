"""What a command costs before it works: the executable imports what that command needs and nothing else
(no other command's modules, no rich for a quiet run, no DuckDB where nothing is queried), and runs without
pandas, which pyarrow would otherwise import at its first conversion of values (0.25 s of start-up) when it is
installed. Checked on the modules a run has imported when it exits, not on timings."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import flowscope.cli
from flowscope.cli import COMMANDS, _described, _without_pandas, main
from flowscope.demo.pcap import write_synthetic_pcap

CSV = Path(__file__).parents[1] / "csv" / "data" / "unicauca11_example.csv"
NEVER = ("rich", "duckdb", "numba", "maxminddb", "pandas.core", "fastapi", "confluent_kafka")
"""Not one of these for a read or profile into a file: no table or bar is drawn, nothing is queried or enriched."""


def imported(*args: str) -> set[str]:
    """The modules ``python -m flowscope ARGS`` has imported when it exits (it must succeed). ``-X importtime``
    would not do: it does not list what ``importlib.import_module`` imports, i.e. the command's own module."""
    record = "import atexit, sys; atexit.register(lambda: print(*sys.modules, sep='\\n', file=sys.__stderr__))"
    run = f"{record}; import runpy; sys.argv[1:] = {list(args)!r}; runpy.run_module('flowscope', run_name='__main__')"
    env = {name: value for name, value in os.environ.items() if name not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    done = subprocess.run([sys.executable, "-c", run], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    return set(done.stderr.split())


def other_commands(modules: set[str], *ours: str) -> set[str]:
    return {f"flowscope.cli.{module}" for module in COMMANDS.values() if module not in ours} & modules


def loaded(modules: set[str], *packages: str) -> set[str]:
    return {name for name in modules for package in packages if name == package or name.startswith(package + ".")}


@pytest.mark.skipif(importlib.util.find_spec("pandas") is None, reason="pandas is not installed: nothing to avoid")
def test_a_command_that_converts_values_does_not_import_pandas(tmp_path: Path) -> None:
    out = tmp_path / "o.csv"
    modules = imported("-q", "read", str(CSV), "-o", str(out))
    assert "pyarrow" in modules
    assert not loaded(modules, "pandas")
    assert out.read_text().count("\n") > 1


@pytest.mark.parametrize(("kind", "quiet"), [("csv", ["-q"]), ("pcap", ["-q"]), ("pcap", [])])
def test_a_read_imports_only_what_reading_needs(tmp_path: Path, kind: str, quiet: list[str]) -> None:
    """Without -q too: its message goes to a pipe here, where it needs no rich."""
    source = CSV
    if kind == "pcap":
        source = tmp_path / "small.pcap"
        write_synthetic_pcap(source, packets=200, flows=10)
    out = tmp_path / "o.parquet"
    modules = imported(*quiet, "read", str(source), "-o", str(out))
    assert "flowscope.cli.read" in modules and out.exists()
    assert not other_commands(modules, "read")
    assert not loaded(modules, *NEVER)


def test_a_quiet_profile_imports_only_what_profiling_needs(tmp_path: Path) -> None:
    modules = imported("-q", "profile", str(CSV), "-o", str(tmp_path / "p.csv"))
    assert not other_commands(modules, "profile_cmd")
    assert not loaded(modules, *NEVER)


def test_a_query_imports_no_other_command_and_no_parquet_writer(small_lake: Path) -> None:
    modules = imported("--lake", str(small_lake), "query", "SELECT count(*) FROM flows", "--format", "csv")
    assert "duckdb" in modules
    assert not other_commands(modules, "query")
    assert not loaded(modules, "pyarrow.parquet", "numba", "maxminddb", "pandas")


def test_help_lists_the_commands_without_loading_them() -> None:
    modules = imported("--help")
    assert not other_commands(modules)
    assert not loaded(modules, "numpy", "pyarrow", "duckdb", "rich")


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_a_command_is_listed_with_the_short_help_it_has_when_loaded(name: str) -> None:
    command = main.get_command(click.Context(main), name)
    described = _described(name)
    assert command is not None and described is not None
    for limit in (30, 45, 60, 200):
        assert described.get_short_help_str(limit) == command.get_short_help_str(limit)


def test_help_imports_the_commands_where_their_sources_are_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(flowscope.cli, "_module_source", lambda module: None)
    result = CliRunner().invoke(main, ["--help"], catch_exceptions=False)
    listed = result.output.split("Commands:")[1].split("Examples:")[0]
    assert [line.split()[0] for line in listed.splitlines() if line[2:3].strip()] == sorted(COMMANDS)


def test_pandas_stays_importable_where_it_was_loaded_or_for_spark(monkeypatch: pytest.MonkeyPatch) -> None:
    finders = list(sys.meta_path)
    monkeypatch.setattr(sys, "meta_path", finders)
    _without_pandas(["spark", "meter", "dir"])
    assert sys.meta_path == finders
    monkeypatch.setitem(sys.modules, "pandas", sys.modules.get("pandas") or object())
    _without_pandas(["read", "x.csv"])
    assert sys.meta_path == finders


def test_materialize_into_sqlite_computes_the_view_without_duckdb(small_lake: Path, tmp_path: Path) -> None:
    """The reduction view is computed in process (``materialize.whole``): DuckDB is not even imported."""
    target = f"sqlite:///{tmp_path / 'pairs.db'}"
    modules = imported("-q", "--lake", str(small_lake), "materialize", "pairs", "--to", target, "--table", "pairs")
    assert not other_commands(modules, "materialize_cmd")
    assert not loaded(modules, "duckdb", "rich", "numba", "pandas.core")
    assert (tmp_path / "pairs.db").stat().st_size > 0
