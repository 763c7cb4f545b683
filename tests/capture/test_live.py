"""Live capture: interface choice, the tcpdump command line, and a real capture on loopback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tests.conftest import require_tool, skip_or_fail

from flowscope.capture.live import Rotation, default_interface, prepare_day_folders, tcpdump_command
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


@pytest.mark.integration
def test_capture_on_loopback_meters_every_packet_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    require_tool("tcpdump")
    if os.geteuid() != 0:
        skip_or_fail("capturing needs root (CAP_NET_RAW)")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    lake = Lake.at(tmp_path / "lake")
    command = [sys.executable, "-m", "flowscope", "--lake", str(lake.root), "capture", "-i", "lo",
               "--dir", str(tmp_path / "captures"), "--rotate", "1", f"udp and dst port {port}"]  # fmt: skip
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
