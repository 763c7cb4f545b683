"""``flowscope mock``: the demo's traffic at a steady rate, spread over mock exporters."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
from click.testing import CliRunner

from flowscope import addresses
from flowscope.cli import main
from flowscope.demo.mock import mock_flows


def test_count_and_exporters() -> None:
    batches = list(mock_flows(50_000, count=3_000, exporters=3))
    assert sum(b.num_rows for b in batches) == 3_000
    exporters = set()
    for batch in batches:
        exporters |= set(addresses.format_text(batch.column("sampler_address")).to_pylist())
    assert exporters == {"192.0.2.1", "192.0.2.2", "192.0.2.3"}


def test_rate_over_a_duration() -> None:
    rows = sum(b.num_rows for b in mock_flows(5_000, duration=0.5))
    assert rows == 2_500  # exactly rate x duration: ticks that run late are caught up, not lost


def test_cli_into_a_file(tmp_path: Path) -> None:
    out = tmp_path / "mock.parquet"
    result = CliRunner().invoke(main, ["--lake", str(tmp_path / "lake"), "mock", "--to", str(out), "--count", "500",
                                       "--rate", "100000"], catch_exceptions=False)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert pq.read_table(out).num_rows == 500
