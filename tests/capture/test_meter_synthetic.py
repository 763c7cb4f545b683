"""The synthetic capture (demo and benchmark input) read back and metered: exact totals, sane flows."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from tests.capture.test_meter_nfpcapd import nfpcapd_totals

from flowscope.capture import chunks, source
from flowscope.capture.options import MeterOptions
from flowscope.capture.source import CaptureSource
from flowscope.demo.pcap import write_synthetic_pcap


def totals(table: pa.Table) -> tuple[int, int]:
    packets = table.column("packets").to_numpy().sum() + table.column("packets_rev").to_numpy().sum()
    octets = table.column("bytes").to_numpy().sum() + table.column("bytes_rev").to_numpy().sum()
    return int(packets), int(octets)


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    path = tmp_path_factory.mktemp("synthetic") / "mix.pcap"
    return path, write_synthetic_pcap(path, packets=30_000, flows=2_000, duration=900)


def test_metering_reproduces_the_written_totals(capture: tuple[Path, dict[str, int]]) -> None:
    path, written = capture
    source = CaptureSource([path])
    table = pa.concat_tables(list(source))
    assert not source.skips.total
    assert totals(table) == (written["packets"], written["ip_bytes"])
    link = pa.concat_tables(list(CaptureSource([path], MeterOptions(link_bytes=True))))
    assert totals(link)[1] == written["wire_bytes"]
    # every flow is a biflow started by its client; timeouts split only some of them
    assert written["flows"] <= table.num_rows < written["flows"] * 1.2
    assert set(table.column("proto").to_pylist()) == {1, 6, 17, 58}
    assert table.column("vlan_id").to_numpy().max() > 0


def test_gathered_output_tables_hold_the_same_flows(
    capture: tuple[Path, dict[str, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finished flows are gathered across batches into bigger tables; how many per table changes nothing."""
    path, _ = capture
    monkeypatch.setattr(chunks.Chunks, "chunk_bytes", 1 << 20)  # many packet batches
    gathered = pa.concat_tables(list(CaptureSource([path])))
    monkeypatch.setattr(source, "GATHER_FLOWS", 1)
    tables = list(CaptureSource([path]))
    assert len(tables) > 3
    assert pa.concat_tables(tables).equals(gathered)


@pytest.mark.integration
def test_nfpcapd_counts_the_same_packets_and_bytes(capture: tuple[Path, dict[str, int]], tmp_path: Path) -> None:
    path, written = capture
    theirs = nfpcapd_totals(path, tmp_path / "nfpcapd")
    assert (theirs["Packets"], theirs["Bytes"]) == (written["packets"], written["ip_bytes"])
