"""pcap/pcapng/gzip readers and capture directories on hand-built files: formats, ordering and damage."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
from tests.capture.frame_builders import (
    ether,
    ipv4,
    pcap_file,
    pcapng_block,
    pcapng_epb,
    pcapng_idb,
    pcapng_opb,
    pcapng_option,
    pcapng_shb,
    pcapng_spb,
    tcp,
    udp,
)

from flowscope.capture import capture_files, iter_packet_batches
from flowscope.capture.files import iter_frames
from flowscope.capture.packets import PacketBatch
from flowscope.diagnostics import Skips
from flowscope.errors import FlowscopeError

START = 1_700_000_000


def frame(port: int) -> bytes:
    return ether(ipv4(udp(port, 53, b"q"), 17))


def read(paths: list[Path], **kwargs) -> tuple[PacketBatch, Skips]:
    skips = Skips(unit="packets")
    batches = list(iter_packet_batches(paths, skips=skips, **kwargs))
    return PacketBatch.concat(batches), skips


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("nanosecond", [False, True])
def test_pcap_byte_orders_and_resolutions(tmp_path: Path, order: str, nanosecond: bool) -> None:
    path = tmp_path / "a.pcap"
    path.write_bytes(pcap_file([frame(p) for p in (1, 2, 3)], order=order, nanosecond=nanosecond))
    batch, skips = read([path])
    assert batch.src_port.tolist() == [1, 2, 3] and skips.total == 0
    assert batch.ts_ns.tolist() == [(START + i) * 10**9 + 250_000_000 for i in range(3)]


def test_pcap_wire_length_and_small_batches(tmp_path: Path) -> None:
    frames = [frame(p) for p in range(1, 11)]
    path = tmp_path / "a.pcap"
    path.write_bytes(pcap_file(frames, wire_lens=[len(f) + 100 for f in frames]))
    skips = Skips()
    batches = list(iter_packet_batches([path], skips=skips, batch_packets=3))
    assert [len(b) for b in batches] == [3, 3, 3, 1]
    assert PacketBatch.concat(batches).wire_len.tolist() == [len(f) + 100 for f in frames]


def test_truncated_last_record_is_counted(tmp_path: Path) -> None:
    path = tmp_path / "cut.pcap"
    path.write_bytes(pcap_file([frame(1), frame(2)])[:-10])
    batch, skips = read([path])
    assert len(batch) == 1
    assert skips.counts["truncated last record"] == 1


@pytest.mark.parametrize("cut", [0, 10, 60])
def test_mapped_files_read_like_read_files(tmp_path: Path, cut: int) -> None:
    """Memory-mapped reading (``flowscope read``) sees the same packets and damage, down to a cut file header."""
    path = tmp_path / "a.pcap"
    content = pcap_file([frame(p) for p in range(1, 6)])
    path.write_bytes(content[: len(content) - cut] if cut < len(content) else b"")
    (read_batch, read_skips), (mapped_batch, mapped_skips) = (read([path], mapped=m) for m in (False, True))
    assert mapped_batch.src_port.tolist() == read_batch.src_port.tolist()
    assert mapped_batch.ts_ns.tolist() == read_batch.ts_ns.tolist()
    assert mapped_skips.counts == read_skips.counts == ({"truncated last record": 1} if cut else {})
    assert len(mapped_batch) == (5 if cut == 0 else 4 if cut == 10 else 3)


def test_mapped_empty_file_is_no_capture(tmp_path: Path) -> None:
    path = tmp_path / "empty.pcap"
    path.write_bytes(b"")
    with pytest.raises(FlowscopeError, match="not a pcap or pcapng"):
        read([path], mapped=True)


def test_impossible_record_length_stops_the_file_not_the_stream(tmp_path: Path) -> None:
    good = pcap_file([frame(1)])
    broken = good + struct.pack("<IIII", START, 0, 0x7FFFFFFF, 60) + bytes(64)
    (tmp_path / "a.pcap").write_bytes(broken)
    (tmp_path / "b.pcap").write_bytes(pcap_file([frame(2)]))
    batch, skips = read([tmp_path])
    assert batch.src_port.tolist() == [1, 2]
    assert skips.counts["pcap record with impossible length: rest of file unreadable"] == 1


def test_bogus_timestamp_fraction_and_lengths_are_counted(tmp_path: Path) -> None:
    data = bytearray(pcap_file([frame(1)]))
    struct.pack_into("<I", data, 24 + 4, 5_000_000)  # 5 s worth of microseconds in the fraction field
    struct.pack_into("<I", data, 24 + 12, 10)  # original length below captured length
    path = tmp_path / "a.pcap"
    path.write_bytes(bytes(data))
    batch, skips = read([path])
    assert len(batch) == 1 and batch.wire_len[0] == len(frame(1))
    assert skips.counts["timestamp fraction out of range (packet kept, fraction clamped)"] == 1
    assert skips.counts["original length below captured length (packet kept, length raised)"] == 1


def test_gzip_and_rotated_directory_in_natural_order(tmp_path: Path) -> None:
    day = tmp_path / "2024-01-01"
    day.mkdir()
    for index in (0, 1, 2, 10):
        name = "cap.pcap" + (str(index) if index else "")
        content = pcap_file([frame(100 + index)])
        if index == 2:
            (day / (name + ".gz")).write_bytes(gzip.compress(content))
        else:
            (day / name).write_bytes(content)
    (day / ".cap.pcap11.partial").write_bytes(b"hidden files are ignored")
    assert [p.name for p in capture_files([tmp_path])] == ["cap.pcap", "cap.pcap1", "cap.pcap2.gz", "cap.pcap10"]
    batch, skips = read([tmp_path])
    assert batch.src_port.tolist() == [100, 101, 102, 110] and skips.total == 0


def test_gzip_cut_short_keeps_what_was_read(tmp_path: Path) -> None:
    """A compressed capture cut short (still being compressed, a broken copy): earlier packets are kept."""
    noise = np.random.default_rng(5).integers(0, 256, 600, dtype=np.uint8).tobytes()
    content = pcap_file([ether(ipv4(udp(p, 53, noise), 17)) for p in range(1, 2001)])
    path = tmp_path / "cut.pcap.gz"
    path.write_bytes(gzip.compress(content, compresslevel=1)[:-1000])
    batch, skips = read([path])
    assert 400 < len(batch) < 2000 and batch.src_port.tolist() == list(range(1, len(batch) + 1))
    assert skips.counts["compressed stream broken or cut short: rest of file unreadable"] == 1
    broken = tmp_path / "broken.pcap.gz"
    broken.write_bytes(b"\x1f\x8b" + b"not really gzip")
    with pytest.raises(FlowscopeError, match="cannot read"):
        read([broken])


def test_gzip_cut_inside_its_first_piece_keeps_what_was_read(tmp_path: Path) -> None:
    """Cut within the reader's first 256 KiB piece of decompressed data: the packets before the cut are kept
    (the whole file was unreadable when one read of that piece dropped what it had decompressed)."""
    noise = np.random.default_rng(6).integers(0, 256, (200, 100), dtype=np.uint8)
    content = pcap_file([ether(ipv4(udp(p, 53, noise[p - 1].tobytes()), 17)) for p in range(1, 201)])
    path = tmp_path / "cut.pcap.gz"
    path.write_bytes(gzip.compress(content)[:3000])
    batch, skips = read([path])
    assert 0 < len(batch) < 200 and batch.src_port.tolist() == list(range(1, len(batch) + 1))
    assert skips.counts["compressed stream broken or cut short: rest of file unreadable"] == 1


def test_not_a_capture_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello, this is not a capture\n")
    with pytest.raises(FlowscopeError, match="not a pcap or pcapng capture"):
        read([path])
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    with pytest.raises(FlowscopeError, match="not a pcap or pcapng"):
        read([empty])
    with pytest.raises(FlowscopeError, match="no such file"):
        read([tmp_path / "missing.pcap"])
    short = tmp_path / "short.pcap"
    short.write_bytes(pcap_file([])[:20])
    with pytest.raises(FlowscopeError, match="header cut short"):
        read([short])


@pytest.mark.parametrize("order", ["<", ">"])
def test_pcapng_interfaces_resolutions_offsets_and_blocks(tmp_path: Path, order: str) -> None:
    nano = pcapng_option(9, b"\x09", order)
    binary = pcapng_option(9, b"\x94", order) + pcapng_option(14, struct.pack(order + "q", 100), order)
    raw_ip = ipv4(tcp(7, 8), 6)
    content = b"".join(
        [
            pcapng_shb(order),
            pcapng_idb(1, 0, order),  # microseconds by default
            pcapng_idb(101, 0, order, nano),  # raw IP, nanoseconds
            pcapng_block(4, b"\x00\x00\x00\x00", order),  # name resolution block (ends at once)
            pcapng_epb(0, START * 10**6 + 5, frame(1), order),
            pcapng_block(0x00000BAD, struct.pack(order + "I", 32473) + b"custom", order),
            pcapng_epb(1, START * 10**9 + 7, raw_ip, order),
            pcapng_idb(1, 40, order, binary),  # 2^-20 s ticks, +100 s offset, snaplen 40
            pcapng_block(5, struct.pack(order + "III", 0, 0, 0), order),  # interface statistics
            pcapng_epb(2, (START << 20) + (1 << 19), frame(3), order),
        ]
    )
    path = tmp_path / "a.pcapng"
    path.write_bytes(content)
    batch, skips = read([path])
    assert batch.src_port.tolist() == [1, 7, 3] and skips.total == 0
    assert batch.ts_ns.tolist() == [START * 10**9 + 5000, START * 10**9 + 7, (START + 100) * 10**9 + 500_000_000]


def test_pcapng_sections_of_both_byte_orders_and_simple_packets(tmp_path: Path) -> None:
    content = b"".join(
        [
            pcapng_shb("<"),
            pcapng_idb(1, 0, "<"),
            pcapng_epb(0, START * 10**6, frame(1), "<"),
            pcapng_shb(">"),
            pcapng_idb(1, len(frame(2)), ">"),  # the SPB holds min(original length, snaplen) bytes
            pcapng_spb(frame(2), ">", wire_len=len(frame(2)) + 40),
            pcapng_epb(0, START * 10**6, frame(3), ">"),
            pcapng_epb(1, START * 10**6, frame(4), ">"),  # interface 1 was never described in this section
        ]
    )
    path = tmp_path / "a.pcapng"
    path.write_bytes(content)
    skips = Skips()
    frames = list(iter_frames(path, skips))
    assert sum(len(f) for f in frames) == 3
    assert skips.counts["packet block for an undeclared interface"] == 1
    assert skips.counts["simple packet blocks carry no timestamp (packet kept, time 0)"] == 1
    caplens = np.concatenate([f.caplens for f in frames]).tolist()
    assert caplens == [len(frame(1)), len(frame(2)), len(frame(3))]  # SPB padding is not data
    batch, _ = read([path])
    assert batch.src_port.tolist() == [1, 2, 3]
    assert batch.wire_len.tolist()[1] == len(frame(2)) + 40


@pytest.mark.parametrize("order", ["<", ">"])
def test_pcapng_obsolete_packet_block(tmp_path: Path, order: str) -> None:
    content = pcapng_shb(order) + pcapng_idb(1, 0, order) + pcapng_idb(101, 0, order)
    content += pcapng_opb(0, START * 10**6, frame(5), order) + pcapng_opb(
        1, START * 10**6 + 1, ipv4(tcp(6, 7), 6), order
    )
    path = tmp_path / "a.pcapng"
    path.write_bytes(content)
    batch, skips = read([path])
    assert batch.src_port.tolist() == [5, 6] and skips.total == 0
    assert batch.ts_ns.tolist() == [START * 10**9, START * 10**9 + 1000]


def test_pcapng_damage(tmp_path: Path) -> None:
    good = pcapng_shb() + pcapng_idb() + pcapng_epb(0, 0, frame(1))
    cases = {
        "truncated last block": good + pcapng_epb(0, 0, frame(2))[:-9],
        "pcapng block with impossible length: rest of file unreadable": good + struct.pack("<II", 6, 13) + bytes(20),
    }
    for reason, content in cases.items():
        path = tmp_path / "a.pcapng"
        path.write_bytes(content)
        batch, skips = read([path])
        assert len(batch) == 1 and skips.counts[reason] == 1, reason


def test_pcapng_timestamp_beyond_int64_nanoseconds(tmp_path: Path) -> None:
    path = tmp_path / "a.pcapng"
    path.write_bytes(pcapng_shb() + pcapng_idb() + pcapng_epb(0, 4_734_231_571_822 * 10**6, frame(1)))
    batch, skips = read([path])
    assert batch.ts_ns.tolist() == [0]
    assert skips.counts["timestamp outside 1970..2262 (packet kept, time 0)"] == 1


def test_pcapng_binary_resolution_beyond_64_bits(tmp_path: Path) -> None:
    """``if_tsresol`` 2^-70 s: every 64-bit count is under a second (shifting by 70 overflowed; found by
    fuzz/targets/pcapng.py)."""
    fine = pcapng_option(9, bytes([0x80 | 70]), "<")
    path = tmp_path / "a.pcapng"
    path.write_bytes(pcapng_shb() + pcapng_idb(1, 0, "<", fine) + pcapng_epb(0, 1 << 62, frame(1)))
    batch, skips = read([path])
    assert skips.total == 0
    assert batch.ts_ns.tolist() == [3_906_250] and batch.src_port.tolist() == [1]  # 2^62 / 2^70 s
