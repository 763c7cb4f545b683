"""Rotated capture directories for the Spark tests: a real or synthetic capture cut by time into day folders."""

from __future__ import annotations

import shutil
import struct
import time
from pathlib import Path

from tests.conftest import shared_data

from flowscope.demo.pcap import write_synthetic_pcap

GLOBAL_HEADER = 24
RECORD_HEADER = 16


def records(path: Path) -> tuple[bytes, list[tuple[int, bytes]]]:
    """The global header and (seconds, record bytes) of every record of a little- or big-endian pcap."""
    data = path.read_bytes()
    order = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    found, at = [], GLOBAL_HEADER
    while at + RECORD_HEADER <= len(data):
        seconds, _, caplen, _ = struct.unpack_from(f"{order}IIII", data, at)
        end = at + RECORD_HEADER + caplen
        found.append((seconds, data[at:end]))
        at = end
    return data[:GLOBAL_HEADER], found


def rotate(source: Path, directory: Path, seconds: int, *, prefix: str = "cap") -> list[Path]:
    """``source`` cut every ``seconds`` of capture time into ``DAY/prefix-N.pcap`` files (N counts on
    across days, unpadded: rotation order is natural order). Returns the files in order."""
    header, found = records(source)
    written: list[Path] = []
    slots: dict[int, list[bytes]] = {}
    for stamp, record in found:
        slots.setdefault(stamp // seconds, []).append(record)
    for number, slot in enumerate(sorted(slots)):
        day = time.strftime("%Y-%m-%d", time.gmtime(slot * seconds))
        path = directory / day / f"{prefix}-{number}.pcap"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(header + b"".join(slots[slot]))
        written.append(path)
    return written


def synthetic_rotated(directory: Path, *, packets: int = 60_000, flows: int = 3_000, seconds: int = 40) -> list[Path]:
    """A synthetic capture of ten minutes rotated every ``seconds`` (so most flows span files), one folder per day."""
    source = directory.parent / f".{directory.name}-whole.pcap"
    write_synthetic_pcap(source, packets=packets, flows=flows, duration=600.0)
    try:
        return rotate(source, directory, seconds)
    finally:
        source.unlink()


SPLIT = ("1kxun.pcap", "skype.pcap", "synscan.pcap", "ip_fragmented_garbage.pcap")
"""The larger NFStream captures, cut into 20-second files; the others are rotated files of their own."""


def shared_rotated(directory: Path) -> Path:
    """Every NFStream capture and tcpdump's, in folders per source; the larger ones split into rotated files.
    Captures of other days follow each other, so times go back between files: not stitchable, metered whole."""
    for source in ("nfstream", "tcpdump"):
        for capture in sorted(shared_data("pcap", source).glob("*.pcap*")):
            if capture.name in SPLIT:
                rotate(capture, directory / "split", 20, prefix=capture.stem)
                continue
            (directory / source).mkdir(parents=True, exist_ok=True)
            shutil.copy(capture, directory / source / capture.name)
    return directory
