"""Command-line flags -> typed reader options, and click kept inside ``flowscope.cli``."""

from __future__ import annotations

import ast
from pathlib import Path

from click.testing import CliRunner

import flowscope
from flowscope.capture.options import MeterOptions
from flowscope.cli import main
from flowscope.cli.capture_cmds import watch
from flowscope.cli.options import meter_from, read_options_from
from flowscope.cli.read import read
from flowscope.collect.options import ExportOptions
from flowscope.nfdump.options import RecordSelection
from flowscope.readers.options import ReadOptions
from flowscope.readers.text_options import TextOptions
from flowscope.reduce import BUILTIN

PACKAGE = Path(flowscope.__file__).parent


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return found


def test_only_the_cli_package_imports_click() -> None:
    outside = [p for p in PACKAGE.rglob("*.py") if PACKAGE / "cli" not in p.parents]
    assert outside and not [str(p.relative_to(PACKAGE)) for p in outside if "click" in imported_modules(p)]


def test_absent_flags_give_the_default_options() -> None:
    assert read_options_from(read.make_context("read", ["in.pcap"]).params) == ReadOptions()
    assert meter_from(watch.make_context("watch", ["."]).params) == MeterOptions()


def test_flags_become_typed_options(tmp_path: Path) -> None:
    config = tmp_path / "sampling.toml"
    config.write_text("[sampling]\ndefault = 10\n")
    args = [
        *("--idle", "30", "--active", "600", "--uniflow", "--bytes", "link", "--tunnels", "inner"),
        *("--max-flows", "1000", "--tz", "Europe/Paris", "--strict", "--commit-rows", "10", "--commit-seconds", "2"),
        *("--exporter", "10.0.0.1", "--in-if", "3", "--drop-arp", "--max-records", "5"),
        *("--reduce", "pairs", "--sampling-config", str(config), "in.pcap"),
    ]
    assert read_options_from(read.make_context("read", args).params) == ReadOptions(
        meter=MeterOptions(active=600, idle=30, uniflow=True, link_bytes=True, tunnels="inner", max_flows=1000),
        text=TextOptions(tz="Europe/Paris", strict=True, commit_rows=10, commit_seconds=2),
        exports=ExportOptions(sampling_config=config, tunnels="inner"),
        selection=RecordSelection(exporter="10.0.0.1", in_if=3, drop_arp=True, max_records=5),
        reduce=BUILTIN["pairs"],
    )


def test_a_missing_sampling_config_is_one_error_line(tmp_path: Path) -> None:
    capture = tmp_path / "exports.pcap"
    capture.write_bytes(b"")
    missing = tmp_path / "missing.toml"
    args = ["read", "--as-exports", "--sampling-config", str(missing), str(capture)]
    result = CliRunner().invoke(main, ["--lake", str(tmp_path / "lake"), *args])
    assert result.exit_code == 2
    assert result.output == f"error: sampling config {missing}: no such file\n"
