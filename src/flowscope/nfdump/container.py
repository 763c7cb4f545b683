"""The nfdump 1.7 file container: file header, data blocks, block compression, appendix.

Layout 2 (nfdump >= 1.7): a 40-byte header, then data blocks (12-byte header + payload);
the payload of every block is compressed with the file's method unless the block's
flag says otherwise. The appendix (ident and summary statistics) is written after
the data blocks, at ``offAppendix``.
"""

from __future__ import annotations

import bz2
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from flowscope.diagnostics import Skips
from flowscope.errors import FlowscopeError

MAGIC = 0xA50C
LAYOUT_VERSION_1 = 1
LAYOUT_VERSION_2 = 2
FILE_HEADER = struct.Struct("<HHIqBBHIqII")
BLOCK_HEADER = struct.Struct("<IIHH")
RECORD_HEADER = struct.Struct("<HH")

NOT_COMPRESSED, LZO_COMPRESSED, BZ2_COMPRESSED, LZ4_COMPRESSED, ZSTD_COMPRESSED = 0, 1, 2, 3, 4
COMPRESSION_NAMES = {0: "uncompressed", 1: "LZO", 2: "BZ2", 3: "LZ4", 4: "ZSTD"}
FLAG_BLOCK_UNCOMPRESSED = 0x1
DATA_BLOCK_TYPE_3 = 3
TYPE_IDENT = 0x8001
TYPE_STAT = 0x8002

# nfcapd writes blocks of about 1 MiB; nfdump's own decompression buffer is 5 MiB (headroom for other builds).
TYPICAL_BLOCK_BYTES = 2 * 1024 * 1024
MAX_BLOCK_BYTES = 16 * 1024 * 1024
# Sanity bound on a block's stored size: a larger value means a corrupt header.
MAX_STORED_BLOCK = 64 * 1024 * 1024

# flows, bytes, packets, then per-protocol counters, first/last msec, sequence failures
_STAT = struct.Struct("<15Q2QI")


@dataclass(frozen=True)
class FileHeader:
    version: int
    nfdversion: int
    created: int
    compression: int
    encryption: int
    appendix_blocks: int
    creator: int
    appendix_offset: int
    block_size: int
    num_blocks: int


@dataclass
class Stat:
    """The summary nfdump keeps in the appendix (what ``nfdump -I`` prints)."""

    flows: int
    bytes: int
    packets: int
    first_msec: int
    last_msec: int
    sequence_failures: int


@dataclass
class Block:
    num_records: int
    type: int
    payload: bytes


def read_header(handle: BinaryIO, path: Path) -> FileHeader:
    raw = handle.read(FILE_HEADER.size)
    if len(raw) < 4:
        raise FlowscopeError(f"{path}: too short for an nfdump file ({len(raw)} bytes)")
    magic, version = struct.unpack_from("<HH", raw)
    if magic != MAGIC:
        raise FlowscopeError(f"{path}: not an nfdump file (magic {magic:#06x}, expected {MAGIC:#06x})")
    if version == LAYOUT_VERSION_1:
        raise FlowscopeError(f"{path}: nfdump 1.6 file (layout 1); convert it with 'nfdump -r FILE -w NEW' (1.7)")
    if version != LAYOUT_VERSION_2:
        raise FlowscopeError(f"{path}: unknown nfdump file layout {version}")
    if len(raw) < FILE_HEADER.size:
        raise FlowscopeError(f"{path}: truncated nfdump file header")
    header = FileHeader(*FILE_HEADER.unpack(raw)[1:])
    if header.encryption:
        raise FlowscopeError(f"{path}: encrypted nfdump files are not supported")
    return header


def sniff(head: bytes) -> bool:
    return len(head) >= 4 and struct.unpack_from("<HH", head) in ((MAGIC, LAYOUT_VERSION_2), (MAGIC, LAYOUT_VERSION_1))


class Decompressor:
    """Block payload decompression for one method; libraries are imported only when a file needs them.

    ``missing`` says why this file's compressed blocks cannot be read here (a codec not installed, a
    method not supported), naming the file and the fix: its blocks become counted skips, so one such
    file in a folder does not stop the others from being read.
    """

    def __init__(self, method: int, path: Path) -> None:
        self.method = method
        self.name = COMPRESSION_NAMES.get(method, f"method {method}")
        self.missing: str | None = None
        if method == LZO_COMPRESSED:
            try:
                import lzallright
                import lzokay
            except ImportError:
                self.missing = (
                    f"{path}: LZO-compressed, and the LZO codec is not installed "
                    "(pip install lzallright lzokay, flowscope dependencies)"
                )
            else:
                self._lzo = lzallright.LZOCompressor
                self._lzo_fits = lzokay.decompress
                self._lzo_errors = (lzallright.LZOError, lzokay.LzokayError)
                self._lzo_overrun = lzokay.OutputOverrunError
        elif method == LZ4_COMPRESSED:
            import lz4.block

            self._lz4 = lz4.block
        elif method not in (NOT_COMPRESSED, BZ2_COMPRESSED):
            self.missing = f"{path}: nfdump compression {self.name} is not supported (to LZ4: nfdump -r FILE -J 3)"

    def __call__(self, payload: bytes) -> bytes:
        """Raises ValueError on a corrupt payload."""
        if self.method == NOT_COMPRESSED:
            return payload
        if self.method == BZ2_COMPRESSED:
            return _bz2(payload)
        if self.method == LZO_COMPRESSED:
            return self._lzo_bounded(payload)
        # LZ4 blocks do not store their decompressed size: try a buffer that fits nfcapd's blocks
        # (smaller buffers are much cheaper to allocate), then the largest nfdump writes
        for size in (TYPICAL_BLOCK_BYTES, MAX_BLOCK_BYTES):
            try:
                return self._lz4.decompress(payload, uncompressed_size=size)
            except self._lz4.LZ4BlockError as exc:
                error = exc
        raise ValueError(f"LZ4 decompression failed: {error}")

    def _lzo_bounded(self, payload: bytes) -> bytes:
        """An LZO block of at most ``MAX_BLOCK_BYTES``, else ValueError.

        lzallright returns exactly the decompressed bytes but doubles its buffer until they fit, without a
        bound: 1.4 MB of LZO made 256 MiB. lzokay decompresses into a buffer of a given size and fails beyond
        it, but returns the whole buffer (the length is lost). So lzokay tells whether the block fits (2 MiB,
        then 16 MiB, as nfdump's own fixed buffer refuses larger ones), then lzallright, given that size,
        decodes it without growing. Measured on a 1 MiB block (446 kB stored): 19 ms lzallright alone, 11 ms
        more for the 2 MiB check.
        """
        try:
            for size in (TYPICAL_BLOCK_BYTES, MAX_BLOCK_BYTES):
                try:
                    self._lzo_fits(payload, size)
                except self._lzo_overrun:
                    continue
                return self._lzo.decompress(payload, size)
        except self._lzo_errors as exc:
            raise ValueError(f"LZO decompression failed: {exc!r}") from exc
        raise ValueError(f"LZO block decompresses to more than {MAX_BLOCK_BYTES:,} bytes")


def _bz2(payload: bytes) -> bytes:
    """A BZ2 block of at most ``MAX_BLOCK_BYTES``, else ValueError (``bz2.decompress`` has no bound: 208 bytes
    of BZ2 make 256 MiB)."""
    decompressor = bz2.BZ2Decompressor()
    try:
        data = decompressor.decompress(payload, max_length=MAX_BLOCK_BYTES)
    except (OSError, ValueError, EOFError) as exc:
        raise ValueError(f"BZ2 decompression failed: {exc}") from exc
    if decompressor.eof:
        return data
    if decompressor.needs_input:
        raise ValueError("BZ2 decompression failed: the stream is cut short")
    raise ValueError(f"BZ2 block decompresses to more than {MAX_BLOCK_BYTES:,} bytes")


def iter_blocks(
    handle: BinaryIO, path: Path, header: FileHeader, skips: Skips, *, appendix: bool = False
) -> Iterator[Block]:
    """Decompressed data blocks in file order (or the appendix blocks); bad blocks become counted skips."""
    decompress = Decompressor(header.compression, path)
    if appendix:
        if not header.appendix_offset:
            return
        handle.seek(header.appendix_offset)
        remaining: int | None = header.appendix_blocks
    else:
        handle.seek(FILE_HEADER.size)
        remaining = None
    end = header.appendix_offset if header.appendix_offset and not appendix else None
    while remaining is None or remaining > 0:
        offset = handle.tell()
        if end is not None and offset >= end:
            return
        raw = handle.read(BLOCK_HEADER.size)
        if not raw:
            return
        if len(raw) < BLOCK_HEADER.size:
            skips.add("truncated block header at end of file", 1, f"{path.name} @ {offset}")
            return
        num_records, size, block_type, flags = BLOCK_HEADER.unpack(raw)
        if size > MAX_STORED_BLOCK:
            skips.add(
                "corrupt block header (impossible size); rest of file skipped", num_records, f"{path.name} @ {offset}"
            )
            return
        payload = handle.read(size)
        if len(payload) < size:
            skips.add("truncated data block at end of file", num_records, f"{path.name} @ {offset}")
            return
        if remaining is not None:
            remaining -= 1
        if block_type != DATA_BLOCK_TYPE_3:
            skips.add(f"unknown nfdump block type {block_type}", num_records, f"{path.name} @ {offset}")
            continue
        if not flags & FLAG_BLOCK_UNCOMPRESSED:
            if decompress.missing:
                skips.add(decompress.missing, num_records)
                continue
            try:
                payload = decompress(payload)
            except ValueError as exc:
                skips.add("corrupt compressed block", num_records, f"{path.name} @ {offset}: {exc}")
                continue
        yield Block(num_records, block_type, payload)


def read_stat(path: Path) -> Stat | None:
    """The appendix statistics record, or None when the file has none (e.g. an unfinished file)."""
    skips = Skips()
    with open(path, "rb") as handle:
        header = read_header(handle, path)
        for block in iter_blocks(handle, path, header, skips, appendix=True):
            data = block.payload
            pos = 0
            while pos + 4 <= len(data):
                rtype, rsize = RECORD_HEADER.unpack_from(data, pos)
                if rsize < 4:
                    break
                if rtype == TYPE_STAT and pos + 4 + _STAT.size <= len(data):
                    values = _STAT.unpack_from(data, pos + 4)
                    return Stat(values[0], values[1], values[2], values[15], values[16], values[17])
                pos += rsize
    return None
