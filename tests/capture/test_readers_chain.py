"""The vectorised chain walk must find exactly the records a plain sequential walk finds, even when
payloads are full of fake record headers, records are longer than a lane, and chunks cut records."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
from tests.capture.frame_builders import pcapng_epb, pcapng_idb, pcapng_shb, pcapng_spb

from flowscope.capture import chain, chunks, pcap
from flowscope.capture.files import iter_frames
from flowscope.diagnostics import Skips

START = 1_700_000_000


def fake_header(length: int, order: str = "<", start: int = START) -> bytes:
    """A pcap record header that passes every plausibility test and points somewhere plausible."""
    return struct.pack(order + "IIII", start + 1, 5, length, length)


def payloads(count: int, seed: int, order: str = "<", start: int = START) -> list[bytes]:
    """Payloads of varied sizes (some longer than a lane, some empty) stuffed with fake headers."""
    rng = np.random.default_rng(seed)
    out = []
    for index in range(count):
        size = int(rng.choice([0, 40, 60, 300, 1500, 9000, 40000], p=[0.02, 0.2, 0.3, 0.2, 0.2, 0.05, 0.03]))
        fake = b"".join(fake_header(int(rng.integers(0, 200)), order, start) for _ in range(size // 16 + 1))
        shift = index % 16
        out.append((bytes(shift) + fake)[:size])
    return out


def read_frames(path: Path, mapped: bool = False) -> tuple[list[bytes], Skips]:
    """The captured bytes of every frame, as read by flowscope (from a read or a memory-mapped file)."""
    skips = Skips()
    found = []
    for frames in iter_frames(path, skips, mapped=mapped):
        for start, length in zip(frames.offsets.tolist(), frames.caplens.tolist(), strict=True):
            found.append(frames.data[start : start + length].tobytes())
    return found, skips


@pytest.fixture(params=["small-lanes", "small-chunks"])
def small_walk(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Shrink lanes (many guesses per buffer) or chunks (records cut at buffer ends) so small files exercise both."""
    monkeypatch.setattr(chain, "LANE_RECORDS", 4)
    monkeypatch.setattr(chain, "MIN_LANE_BYTES", 1024)
    if request.param == "small-chunks":
        monkeypatch.setattr(chunks.Chunks, "chunk_bytes", 200_000)


@pytest.mark.parametrize(("compressed", "mapped"), [(False, False), (False, True), (True, False)])
@pytest.mark.parametrize(("order", "start"), [("<", START), (">", START), ("<", 2**32 - 1000), (">", 1000)])
def test_pcap_walk_matches_sequential_walk(
    tmp_path: Path, small_walk: None, compressed: bool, mapped: bool, order: str, start: int
) -> None:
    """Either byte order, and times whose year around them wraps past 2**32 (lane starts are guessed from
    the seconds, compared modulo 2**32)."""
    bodies = payloads(1500, seed=1, order=order, start=start)
    content = struct.pack(order + "IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    content += b"".join(fake_header(len(b), order, start) + b for b in bodies)
    content += fake_header(500, order, start) + bytes(100)  # a truncated last record
    path = tmp_path / ("a.pcap.gz" if compressed else "a.pcap")
    path.write_bytes(gzip.compress(content, compresslevel=1) if compressed else content)
    found, skips = read_frames(path, mapped)
    assert found == bodies
    assert skips.counts == {"truncated last record": 1}


def test_pcap_walk_without_usable_lane_guesses(tmp_path: Path, small_walk: None) -> None:
    """Timestamps all over the place give no lane guesses at all: one lane walks everything, still exact."""
    rng = np.random.default_rng(4)
    bodies = payloads(600, seed=3)
    content = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    for body in bodies:
        content += struct.pack("<IIII", int(rng.integers(0, 2**32)), 0, len(body), len(body)) + body
    path = tmp_path / "a.pcap"
    path.write_bytes(content)
    found, skips = read_frames(path)
    assert found == bodies and skips.total == 0


def fake_blocks(body: bytes) -> bytes:
    """Packet blocks of both byte orders, to hide inside a payload."""
    return pcapng_epb(0, 1, body[:64]) + pcapng_epb(0, 1, body[:32], ">")


@pytest.mark.parametrize("mapped", [False, True])
def test_pcapng_walk_matches_block_list(tmp_path: Path, small_walk: None, mapped: bool) -> None:
    """Sections switch byte order every 400 packets; every third payload hides fake blocks."""
    bodies = payloads(1200, seed=2)
    order = "<"
    blocks = [pcapng_shb(order), pcapng_idb(1, 0, order)]
    expected = []
    for index, body in enumerate(bodies):
        frame = (fake_blocks(body) + body) if index % 3 == 0 else body
        blocks.append(pcapng_epb(0, START * 10**6 + index, frame, order))
        expected.append(frame)
        if index % 400 == 399:
            order = ">" if order == "<" else "<"
            blocks += [pcapng_shb(order), pcapng_idb(1, 0, order), pcapng_spb(b"\x01" * 17, order)]
            expected.append(b"\x01" * 17)
    path = tmp_path / "a.pcapng"
    path.write_bytes(b"".join(blocks))
    found, skips = read_frames(path, mapped)
    assert found == expected
    assert set(skips.counts) <= {"simple packet blocks carry no timestamp (packet kept, time 0)"}


@pytest.mark.parametrize("size", [0, 10, 15, 16, 40])
def test_buffers_shorter_than_a_record_header(size: int) -> None:
    """A buffer end holding less than a record header: no record, nothing read out of bounds."""
    buf = np.frombuffer(struct.pack("<IIII", START, 0, 24, 24) + bytes(24), np.uint8)[:size].copy()
    records = pcap._Records(buf, pcap.PcapHeader("<", False, 65535, 1), START)
    found = chain.walk(size, pcap.RECORD_HEADER, records.lengths, records.candidates)
    assert found.offsets.tolist() == ([0] if size == 40 else []) and found.end == (40 if size == 40 else 0)
