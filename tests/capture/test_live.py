"""Live capture: interface choice, the tcpdump command line, and a real capture on loopback."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tests.conftest import require_tool, skip_or_fail

from flowscope.capture.live import (
    Rotation,
    default_interface,
    prepare_day_folders,
    tcpdump_command,
    tcpdump_complaint,
)
from flowscope.errors import FlowscopeError
from flowscope.lake import Lake

ROUTES = """Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
wlan0\t00000000\t0100A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0
eth0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0
eth0\t0001A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0
"""


def test_default_interface_is_the_up_default_route_with_lowest_metric(tmp_path: Path) -> None:
    table = tmp_path / "route"
    table.write_text(ROUTES)
    assert default_interface(table) == "eth0"
    table.write_text(ROUTES.splitlines()[0] + "\n")
    with pytest.raises(FlowscopeError, match="no default route"):
        default_interface(table)


def test_tcpdump_writes_rotating_files_into_day_folders(tmp_path: Path) -> None:
    command = tcpdump_command("tcpdump", "eth0", tmp_path, Rotation(seconds=300, megabytes=100, snaplen=128), "tcp")
    assert command[command.index("-w") + 1] == str(tmp_path / "%Y-%m-%d" / "eth0-%Y%m%d-%H%M%S.pcap")
    assert command[command.index("-G") + 1] == "300" and command[command.index("-C") + 1] == "100"
    assert command[-1] == "tcp" and "-Z" in command
    prepare_day_folders(tmp_path, datetime(2024, 12, 31, 23, 59, tzinfo=UTC))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["2024-12-31", "2025-01-01"]


@pytest.mark.parametrize(
    ("stderr", "complaint"),
    [
        (b"tcpdump: eth9: No such device exists\n(No such device exists)\n", "tcpdump: eth9: No such device exists"),
        (
            b"tcpdump: can't parse filter expression: syntax error\n",
            "tcpdump: can't parse filter expression: syntax error",
        ),
        (b"Killed\n", "Killed"),
        (b"", "no message"),
    ],
)
def test_a_failed_tcpdump_is_named_by_its_own_complaint(stderr: bytes, complaint: str) -> None:
    assert tcpdump_complaint(stderr) == complaint


@pytest.mark.integration
@pytest.mark.parametrize("workers", [1, 2])
def test_capture_on_loopback_meters_every_packet_and_stops_cleanly_on_ctrl_c(tmp_path: Path, workers: int) -> None:
    require_tool("tcpdump")
    if os.geteuid() != 0:
        skip_or_fail("capturing needs root (CAP_NET_RAW)")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    lake = Lake.at(tmp_path / "lake")
    command = [sys.executable, "-m", "flowscope", "--lake", str(lake.root), "capture", "-i", "lo",
               "--dir", str(tmp_path / "captures"), "--rotate", "1", "--workers", str(workers),
               f"udp and dst port {port}"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(2.5)  # tcpdump is up
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            for _ in range(250):
                sender.sendto(b"x" * 100, ("127.0.0.1", port))
                time.sleep(0.008)  # spread over two rotations
        time.sleep(0.5)
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, output
    flows = pa.concat_tables([pq.read_table(f) for f in lake.files("flows")])
    assert flows.column("packets").to_pylist() == [250]
    assert flows.column("bytes").to_pylist() == [250 * 128]
    assert len(list((tmp_path / "captures").rglob("*.pcap"))) >= 2


DROPPED_BY_KERNEL = re.compile(r"(\d+) packets? dropped by kernel")
CAPTURED = re.compile(r"(\d+) packets? captured")


@pytest.mark.integration
def test_capture_names_the_drops_tcpdump_reports_after_a_burst(tmp_path: Path) -> None:
    """A burst into a small kernel buffer makes tcpdump drop; the summary, the health record and the lake agree
    with what tcpdump itself printed (read from its stderr, copied to a log by a wrapper found first on PATH)."""
    tcpdump = require_tool("tcpdump")
    if os.geteuid() != 0:
        skip_or_fail("capturing needs root (CAP_NET_RAW)")
    log = tmp_path / "tcpdump.log"
    wrapper = tmp_path / "bin" / "tcpdump"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/bash\nexec {tcpdump} "$@" 2> >(tee -a {log} >&2)\n')
    wrapper.chmod(0o755)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    lake = Lake.at(tmp_path / "lake")
    command = [sys.executable, "-m", "flowscope", "--lake", str(lake.root), "capture", "-i", "lo",
               "--dir", str(tmp_path / "captures"), "--buffer-kib", "64", "--snaplen", "128",
               f"udp and dst port {port}"]  # fmt: skip
    env = {**os.environ, "PATH": f"{wrapper.parent}:{os.environ['PATH']}"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        _wait_for(lambda: "listening on" in _text(log), "tcpdump to listen")

        def dropped() -> bool:  # bursts until a report (flowscope asks every few seconds) shows drops
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
                for _ in range(20000):
                    sender.sendto(b"x" * 1000, ("127.0.0.1", port))
            return any(int(n) for n in DROPPED_BY_KERNEL.findall(_text(log)))

        _wait_for(dropped, "tcpdump to drop packets")
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, output
    printed = _text(log)
    drops, captured = int(DROPPED_BY_KERNEL.findall(printed)[-1]), int(CAPTURED.findall(printed)[-1])
    assert drops > 0
    assert f"capture loss: tcpdump -i lo: {drops:,} packets dropped by kernel" in " ".join(output.split()), output
    (record,) = (lake.root / "_collector").glob("health-capture-*.json")
    (counters,) = json.loads(record.read_text())["captures"].values()
    assert (counters["kernel_drops"], counters["captured"]) == (drops, captured)
    flows = pa.concat_tables([pq.read_table(f) for f in lake.files("flows")])
    assert sum(flows.column("packets").to_pylist()) == captured  # every packet tcpdump wrote was metered


def _text(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def _wait_for(condition: Callable[[], bool], what: str, deadline: float = 60.0) -> None:
    until = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > until:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)
