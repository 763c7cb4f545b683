"""Capture-side loss is never silent: tcpdump's reports and pcapng statistics reach the summary, health and metrics."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from click.testing import CliRunner
from tests.capture.frame_builders import (
    ether,
    ipv4,
    pcapng_block,
    pcapng_epb,
    pcapng_idb,
    pcapng_option,
    pcapng_shb,
    udp,
)
from tests.conftest import shared_data

from flowscope.capture.drops import CaptureDrops, FileStatistics, parse_tcpdump_statistics
from flowscope.capture.files import iter_frames
from flowscope.capture.pcapng import InterfaceStatistics
from flowscope.cli import main
from flowscope.collect.health import HEALTH_DIR
from flowscope.collect.metrics import render
from flowscope.collect.server import lake_health
from flowscope.diagnostics import Skips
from flowscope.lake import Lake

AT_EXIT = """tcpdump: listening on lo, link-type EN10MB (Ethernet), snapshot length 128 bytes
14379 packets captured
40000 packets received by filter
11242 packets dropped by kernel
"""
ON_SIGUSR1 = "tcpdump: 12 packets captured, 30 packets received by filter, 3 packets dropped by kernel, 1 packet dropped by interface\n"  # noqa: E501


def test_tcpdump_reports_are_read_in_both_forms() -> None:
    assert parse_tcpdump_statistics("tcpdump: listening on lo\n", "t") is None  # nothing reported yet
    assert parse_tcpdump_statistics(AT_EXIT, "t") == CaptureDrops("t", 40000, 14379, 11242, 0)
    assert parse_tcpdump_statistics(ON_SIGUSR1, "t") == CaptureDrops("t", 30, 12, 3, 1)
    latest = parse_tcpdump_statistics(ON_SIGUSR1 + AT_EXIT.replace("11242", "11250"), "t")
    assert latest is not None and (latest.kernel_drops, latest.interface_drops, latest.dropped) == (11250, 1, 11251)
    assert "11,250 packets dropped by kernel" in latest.describe()


def _isb(interface: int, counters: dict[int, int], order: str = "<") -> bytes:
    options = b"".join(pcapng_option(code, struct.pack(order + "Q", value), order) for code, value in counters.items())
    return pcapng_block(5, struct.pack(order + "III", interface, 0, 0) + options + pcapng_option(0, b"", order), order)


def _capture(counters: dict[int, int], order: str = "<", packets: int = 3, second: int = 0) -> bytes:
    """One interface named eth0 (dumpcap style), a few UDP packets ``second`` s into the capture, then a
    statistics block (option codes: 4 ifrecv, 5 ifdrop, 7 osdrop, 8 usrdeliv)."""
    frame = ether(ipv4(udp(1000, 2000, b"x"), 17))
    blocks = [pcapng_shb(order), pcapng_idb(order=order, options=pcapng_option(2, b"eth0", order))]
    start = 1_700_000_000_000_000 + second * 1_000_000
    blocks += [pcapng_epb(0, start + i, frame, order) for i in range(packets)]
    return b"".join(blocks) + _isb(0, counters, order)


@pytest.mark.parametrize("order", ["<", ">"])
def test_interface_statistics_blocks_are_read_in_either_byte_order(tmp_path: Path, order: str) -> None:
    path = tmp_path / "c.pcapng"
    path.write_bytes(_capture({4: 100, 5: 2, 7: 40, 8: 58}, order))
    statistics = InterfaceStatistics()
    frames = list(iter_frames(path, Skips(), statistics=statistics))
    assert sum(len(f) for f in frames) == 3
    assert statistics.latest == {"eth0": {"received": 100, "interface_drops": 2, "kernel_drops": 40, "captured": 58}}


@pytest.mark.parametrize("name", ["advanced/test101.pcapng", "difficult/test202.pcapng"])
def test_conformance_suite_statistics_agree_between_byte_orders(name: str) -> None:
    """The pcapng test suite's files with statistics blocks, test202 with three sections of mixed byte order:
    both byte orders give the same counters, each block read in its own section's order and interfaces."""
    found = []
    for order in ("le", "be"):
        statistics = InterfaceStatistics()
        list(
            iter_frames(
                shared_data("pcap", "pcapng-test-suite", f"output_{order}", name), Skips(), statistics=statistics
            )
        )
        found.append(statistics.latest)
    assert found[0] == found[1]
    assert found[0]["eth0"]["kernel_drops"] > 0 and found[0]["silly ethernet interface 2"]["interface_drops"] > 0


def test_cumulative_counters_of_rotated_files_are_counted_once() -> None:
    """dumpcap's ring files each repeat the run's totals so far; a smaller value is a new run."""
    files = FileStatistics()
    for kernel in (5, 12, 12, 3):  # two files of one run (5, then 7 more), one without news, then a new run
        files.add_file({"eth0": {"kernel_drops": kernel}})
    files.add_file({})  # a file without statistics adds nothing
    assert files.drops is not None and (files.drops.kernel_drops, files.files) == (15, 4)
    assert files.drops.interface_drops is None  # never reported: unknown, not 0


def invoke(lake: Path, *args: str):
    return CliRunner().invoke(main, ["--lake", str(lake), *args], catch_exceptions=False)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_watch_names_the_drops_of_pcapng_files_in_summary_health_and_metrics(tmp_path: Path, workers: str) -> None:
    """With ``--workers 2`` the two files are metered in two processes, which report their statistics back."""
    folder = tmp_path / "ring"
    folder.mkdir()
    (folder / "ring_00001.pcapng").write_bytes(_capture({4: 50, 5: 1, 7: 20, 8: 29}))
    (folder / "ring_00002.pcapng").write_bytes(_capture({4: 120, 5: 1, 7: 35, 8: 84}, second=5))  # cumulative
    lake = tmp_path / "lake"
    result = invoke(lake, "watch", str(folder), "--once", "--workers", workers)
    assert result.exit_code == 0, result.output
    assert "metered in one process" not in result.output  # the workers did it
    assert "capture loss: pcapng statistics: 35 packets dropped by kernel, 1 packets dropped by interface" in (
        result.output.replace("\n", " ")
    )
    (record,) = (lake / HEALTH_DIR).glob("health-capture-*.json")
    saved = json.loads(record.read_text())
    assert saved["kind"] == "capture" and saved["rows_written"] == {"flows": 1}
    merged = lake_health(Lake.at(lake))
    (name,) = merged["captures"]
    assert merged["captures"][name]["kernel_drops"] == 35 and name.startswith("pcapng statistics -> ")
    assert f'flowscope_collector_capture_kernel_drops_total{{capture="{name}"}} 35' in render(merged)
    shown = invoke(lake, "exporters")
    assert shown.exit_code == 0 and "captures" in shown.output and "35" in shown.output


def test_watch_says_when_the_files_cannot_tell_their_loss(tmp_path: Path) -> None:
    folder = tmp_path / "pcaps"
    folder.mkdir()
    (folder / "a.pcap").write_bytes(shared_data("pcap", "nfstream", "dhcp.pcap").read_bytes())
    result = invoke(tmp_path / "lake", "watch", str(folder), "--once")
    assert "capture-side drops unknown" in result.output


def test_watch_metrics_serve_the_capture_drops(tmp_path: Path) -> None:
    import socket
    import urllib.request

    from flowscope.capture.health import CaptureHealth
    from flowscope.capture.options import MeterOptions
    from flowscope.capture.watch import CaptureWatcher
    from flowscope.collect.metrics import MetricsServer
    from flowscope.lake import LakeWriter

    folder = tmp_path / "ring"
    folder.mkdir()
    (folder / "ring_00001.pcapng").write_bytes(_capture({5: 4, 7: 9}))
    lake = Lake.at(tmp_path / "lake")
    watcher = CaptureWatcher(folder, lake, LakeWriter(lake), MeterOptions(), settle=0)
    watcher.poll(final=True)
    health = CaptureHealth(watcher, "run-1")
    with socket.socket() as probe:  # a free port (the metrics address takes no port 0)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = MetricsServer(f"127.0.0.1:{port}", health.merged)
    try:
        with urllib.request.urlopen(f"http://{server.address}/metrics", timeout=10) as response:
            text = response.read().decode()
    finally:
        server.close()
    name = f"pcapng statistics -> {folder}"
    assert f'flowscope_collector_capture_kernel_drops_total{{capture="{name}"}} 9' in text
    assert f'flowscope_collector_capture_interface_drops_total{{capture="{name}"}} 4' in text
    assert "capture_received_total{" not in text  # not reported by the file: unknown, not 0
    assert health.save(lake.root).name == f"health-capture-{watcher.store.identity}.json"
