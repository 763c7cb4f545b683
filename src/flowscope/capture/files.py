"""Capture files as one packet stream: lists and directories of (rotated, maybe gzipped) pcap/pcapng files."""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from flowscope.capture import chain, pcap, pcapng
from flowscope.capture.chunks import Chunks, MappedChunks, ReadChunks
from flowscope.capture.frames import Frames
from flowscope.capture.layers import decode_frames
from flowscope.capture.packets import PacketBatch
from flowscope.diagnostics import Skips
from flowscope.errors import FlowscopeError

GZIP_MAGIC = b"\x1f\x8b"
DEFAULT_BATCH_PACKETS = 1 << 18


def natural_key(path: Path) -> list[object]:
    """Sort key putting tcpdump's rotated ``cap.pcap9`` before ``cap.pcap10`` (numbers compare as numbers)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(path))]


def capture_files(paths: Iterable[Path]) -> list[Path]:
    """Files in stream order: given files as listed, each directory's files (recursively) in natural order."""
    files: list[Path] = []
    for path in paths:
        path = Path(path)
        if path.is_dir():
            found = [p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")]
            files.extend(sorted(found, key=natural_key))
        elif path.exists():
            files.append(path)
        else:
            raise FlowscopeError(f"{path}: no such file or directory")
    return files


@contextmanager
def open_capture(path: Path, *, mapped: bool = False) -> Iterator[Chunks]:
    """The file as chunks, looking through gzip compression; a plain file is memory-mapped when ``mapped``
    (only for files nobody truncates while they are read: see ``chunks.MappedChunks``)."""
    try:
        with open(path, "rb") as raw:
            compressed = raw.read(2) == GZIP_MAGIC
            raw.seek(0)
            if compressed:
                with gzip.GzipFile(fileobj=raw) as unzipped:
                    yield ReadChunks(unzipped)
            else:
                yield MappedChunks(raw) if mapped else ReadChunks(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise FlowscopeError(f"cannot read {path}: {exc}") from exc


def is_capture(head: bytes) -> bool:
    return pcap.sniff(head) or pcapng.sniff(head)


def iter_frames(
    path: Path,
    skips: Skips,
    batch_packets: int = DEFAULT_BATCH_PACKETS,
    *,
    mapped: bool = False,
    statistics: pcapng.InterfaceStatistics | None = None,
    span: pcap.Span | None = None,
) -> Iterator[Frames]:
    """Undecoded frames of one capture file; a file that is no capture raises FlowscopeError. ``statistics``
    collects a pcapng file's interface statistics (drop counters; classic pcap has none). ``span``: only the
    records of that range of a classic pcap file."""
    with open_capture(path, mapped=mapped) as chunks:
        head = chunks.next(0, pcap.FILE_HEADER if span else batch_packets * chain.DEFAULT_MEAN_RECORD)[:12].tobytes()
        if pcap.sniff(head):
            yield from pcap.read_frames(chunks, str(path), skips, batch_packets, span)
        elif span is not None:
            raise FlowscopeError(f"{path}: only classic pcap files are read in spans")
        elif pcapng.sniff(head):
            yield from pcapng.read_frames(chunks, str(path), skips, batch_packets, statistics)
        else:
            raise FlowscopeError(f"{path}: not a pcap or pcapng capture (starts with {head.hex() or 'nothing'})")


def iter_packet_batches(
    paths: Iterable[Path],
    *,
    tunnels: str = "outer",
    batch_packets: int = DEFAULT_BATCH_PACKETS,
    skips: Skips,
    keep_non_ip: bool = False,
    mapped: bool = False,
    statistics: pcapng.InterfaceStatistics | None = None,
    span: pcap.Span | None = None,
) -> Iterator[PacketBatch]:
    """Decoded packets of all files, in order, as one stream (see ``decode_frames`` for ``tunnels``,
    ``open_capture`` for ``mapped``, ``iter_frames`` for ``statistics`` and ``span``)."""
    for path in capture_files(paths):
        for frames in iter_frames(path, skips, batch_packets, mapped=mapped, statistics=statistics, span=span):
            yield decode_frames(
                frames.data,
                frames.offsets,
                frames.caplens,
                frames.wirelens,
                frames.linktypes,
                frames.ts_ns,
                tunnels=tunnels,
                skips=skips,
                keep_non_ip=keep_non_ip,
                heads=frames.heads,
            )
