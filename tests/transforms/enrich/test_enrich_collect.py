"""``flowscope collect --enrich --anonymize``: a live collector on 127.0.0.1 stores enriched, anonymised flows."""

from __future__ import annotations

import signal
import socket
from pathlib import Path

import duckdb
import pytest
from tests.collect.live import free_port, lake_totals, start_collector, stop, wait_for_health
from tests.collect.test_server import sflow_payload


@pytest.mark.slow
def test_collector_enriches_then_anonymises(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    config = tmp_path / "enrich.toml"
    config.write_text('[exporters."192.0.2.1"]\nname = "agent-1"\ngroup = "lab"\n')
    key = tmp_path / "key"
    key.write_text("ab" * 32)
    port = free_port()
    collector = start_collector(
        lake, "--listen", f"sflow://127.0.0.1:{port}", "--enrich", str(config), "--anonymize", str(key)
    )
    try:
        wait_for_health(lake, lambda h: bool(h["listeners"]))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            for sequence in range(1, 11):
                sender.sendto(sflow_payload(sequence), ("127.0.0.1", port))
        wait_for_health(lake, lambda h: sum(e["datagrams"] for e in h["exporters"]) == 10)
    finally:
        code, stderr = stop(collector, signal.SIGTERM)
    assert code == 0, stderr
    assert lake_totals(lake)["flows"] == 50
    rows = duckdb.sql(
        "SELECT DISTINCT exporter_name, exporter_group, sampler_address"
        f" FROM read_parquet('{lake}/flows/**/*.parquet', union_by_name = true)"
    ).fetchall()
    assert [(name, group) for name, group, _ in rows] == [("agent-1", "lab")]
    assert rows[0][2] != bytes(10) + b"\xff\xff" + bytes([192, 0, 2, 1])  # named by its real address, then anonymised


def test_collect_refuses_a_bad_key_before_starting(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from flowscope.cli import main

    key = tmp_path / "key"
    key.write_text("not a key")
    result = CliRunner().invoke(
        main, ["--lake", str(tmp_path), "collect", "--listen", "sflow://127.0.0.1:9", "--anonymize", str(key)]
    )
    assert result.exit_code == 2 and "must hold 32 bytes" in result.output
