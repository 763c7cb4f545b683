"""GoFlow2 ``bin`` files (length-delimited FlowMessages written by the official runtime, with or without the file
transport's newline after each): every message found and decoded as the codec decodes it alone, across block
boundaries; cut or broken files end in a counted skip."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np
import pyarrow as pa
import pytest
from click.testing import CliRunner
from tests.kafka.test_goflow2 import _varint

from flowscope.cli import main
from flowscope.diagnostics import Skips
from flowscope.kafka import goflow2, reader
from flowscope.kafka.reader import GoFlow2FileSource, sniff
from flowscope.readers.registry import head_bytes

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _bodies(flow_pb2: ModuleType, count: int) -> list[bytes]:
    """FlowMessages as GoFlow2 fills them: v4 and v6, its BGP/MPLS/layer fields, bodies of 1- and 2-byte lengths."""
    rng = np.random.default_rng(11)
    bodies = []
    for i in range(count):
        m = flow_pb2.FlowMessage()
        m.type = int(rng.integers(1, 5))
        m.time_received_ns = 1_700_000_000_000_000_000 + i * 1_000
        m.time_flow_start_ns = m.time_received_ns - 5_000_000_000
        m.sampler_address = bytes([192, 0, 2, 1])
        m.bytes = int(rng.integers(40, 10**9))
        m.packets = int(rng.integers(1, 10**5))
        v6 = i % 3 == 0
        m.src_addr = bytes(rng.integers(0, 256, 16 if v6 else 4, dtype=np.uint8))
        m.dst_addr = bytes(rng.integers(0, 256, 16 if v6 else 4, dtype=np.uint8))
        m.etype = 0x86DD if v6 else 0x800
        m.proto = int(rng.choice([6, 17, 1]))
        m.src_port, m.dst_port = int(rng.integers(0, 65536)), 443
        if i % 7 == 0:  # long messages: two-byte length prefixes
            m.bgp_communities.extend(int(x) for x in rng.integers(0, 2**32, 40))
            m.as_path.extend([64500, 64501, 13335])
            m.layer_stack.extend([1, 2, 4])
        bodies.append(m.SerializeToString())
    return bodies


def _expected(bodies: list[bytes]) -> pa.Table:
    """Each message decoded alone by the codec (one Kafka payload each)."""
    return goflow2.decode_payloads([_varint(len(b)) + b for b in bodies], Skips())


def _read(path: Path) -> tuple[pa.Table, GoFlow2FileSource]:
    source = GoFlow2FileSource([path])
    batches = list(source)
    return (pa.concat_tables(batches) if batches else pa.table({})), source


@pytest.mark.parametrize("separated", [False, True])
def test_every_message_is_found_across_blocks(
    tmp_path: Path, flow_pb2: ModuleType, monkeypatch: pytest.MonkeyPatch, separated: bool
) -> None:
    bodies = _bodies(flow_pb2, 30_000)
    path = tmp_path / "flows.bin"
    path.write_bytes(b"".join(_varint(len(b)) + b + (b"\n" if separated else b"") for b in bodies))
    assert sniff(path, head_bytes(path))
    monkeypatch.setattr(reader, "BLOCK_BYTES", 200_000)  # many blocks, messages cut at every block end
    table, source = _read(path)
    assert source.skips.total == 0
    assert table.equals(_expected(bodies))


def test_cut_and_broken_files_end_in_a_counted_skip(tmp_path: Path, flow_pb2: ModuleType) -> None:
    bodies = _bodies(flow_pb2, 500)
    whole = b"".join(_varint(len(b)) + b for b in bodies)
    cut = tmp_path / "cut.bin"
    cut.write_bytes(whole[:-5])
    table, source = _read(cut)
    assert table.num_rows == 499 and source.skips.counts == {"message cut short": 1}
    broken = tmp_path / "broken.bin"
    at = len(b"".join(_varint(len(b)) + b for b in bodies[:300]))
    broken.write_bytes(whole[:at] + b"\xff" * 12 + whole[at:])  # a prefix that is no varint
    table, source = _read(broken)
    assert table.num_rows == 300 and source.skips.counts == {"bytes that are no message (framing lost)": 1}


def test_read_detects_goflow2_files_and_nothing_else(tmp_path: Path, flow_pb2: ModuleType) -> None:
    path = tmp_path / "goflow2.bin"
    path.write_bytes(b"".join(_varint(len(b)) + b + b"\n" for b in _bodies(flow_pb2, 100)))
    result = CliRunner().invoke(main, ["--lake", str(tmp_path / "lake"), "read", str(path)])
    assert result.exit_code == 0, result.output
    assert "100 flows" in result.output and "(goflow2)" in result.output
    noise = tmp_path / "noise.bin"
    noise.write_bytes(np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    assert not sniff(noise, head_bytes(noise))
