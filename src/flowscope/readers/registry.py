"""The table of input formats ``flowscope read`` understands.

A format module calls ``register`` at import time with a sniffer (does this file look
like mine?), an opener (paths + ``ReadOptions`` -> Source) and the options that shape its
output (for ``ReadOptions.fingerprint``). ``FORMAT_MODULES`` lists the modules to import,
so adding a format is one new module and one line here.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from flowscope.errors import FlowscopeError
from flowscope.pipeline import Source
from flowscope.plugins import Registry

if TYPE_CHECKING:  # readers.options imports this module
    from flowscope.readers.options import ReadOptions

FORMAT_MODULES: tuple[str, ...] = (
    "flowscope.nfdump.reader",
    "flowscope.csvflows.reader",
    "flowscope.jsonflows.reader",
    "flowscope.capture.source",
    "flowscope.capture.packet_records",
    "flowscope.collect.exports",
    "flowscope.kafka.reader",
    "flowscope.parquetflows.reader",
)

SNIFF_BYTES = 4096
GZIP_HEAD_BYTES = 1 << 16
"""Compressed bytes read to find a gzip file's first ``SNIFF_BYTES`` (deflate expands; it never shrinks 64 KiB
to less than 4 KiB)."""


@dataclass(frozen=True)
class Reader:
    name: str
    description: str
    sniff: Callable[[Path, bytes], bool]
    """Given a path and its first bytes (decompressed if gzip), say whether this format fits."""
    open: Callable[[Sequence[Path], ReadOptions], Source]
    """Open all paths as one source."""
    shaping: Callable[[ReadOptions], Mapping[str, object]]
    """The options that shape this reader's output, as JSON values (its family's, e.g. ``options.meter``)."""
    continuous: bool = False
    """State carries from one file to the next (flows span rotated captures, templates span exports): the
    files of one read are one stream, and the ingest ledger records them together."""
    lists: Callable[[Sequence[Path]], list[Path]] | None = None
    """A continuous reader's files of a read, as it takes them from the named paths (a folder's files of
    another format left out: notes beside captures are no input the ledger should wait for); None: every
    file."""


_READERS = Registry[Reader](FORMAT_MODULES)
register = _READERS.register
readers = _READERS.loaded


def head_bytes(path: Path, size: int = SNIFF_BYTES) -> bytes:
    """The first bytes of a file, looking through gzip compression (as far as a stream cut short goes: the
    reader then counts the break, as for a longer cut file)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(size)
            if head[:2] == b"\x1f\x8b":
                raw = head + handle.read(GZIP_HEAD_BYTES - len(head))
                head = zlib.decompressobj(zlib.MAX_WBITS | 16).decompress(raw, size)
    except OSError as exc:
        raise FlowscopeError(f"cannot read {path}: {exc}") from exc
    except zlib.error as exc:
        raise FlowscopeError(f"{path}: not a readable gzip file ({exc})") from exc
    return head


def detect(path: Path, head: bytes | None = None) -> Reader:
    """The reader whose sniffer accepts ``path``; a directory's files must all be of one format.

    ``head`` gives the first bytes of a stream that cannot be reopened (standard input, ``-``).
    """
    if head is None and path.is_dir():
        return _detect_directory(path)
    if head is None:
        head = head_bytes(path)
    reader = _sniff(path, head)
    if reader is None and not head:  # was "unrecognised input format ... use --format", which no format fixes
        raise FlowscopeError(f"{'standard input' if str(path) == '-' else path}: empty (no bytes to read)")
    if reader is None:
        known = ", ".join(readers()) or "none registered"
        raise FlowscopeError(f"{path}: unrecognised input format (known formats: {known}); use --format")
    return reader


def _sniff(path: Path, head: bytes) -> Reader | None:
    """The first registered reader that accepts the file, importing format modules only until one does: the
    same reader as sniffing with every module loaded (registration order only grows), where reading a capture
    folder imported the export, Kafka and Parquet readers for nothing (about 0.1 s of start-up, issue 15)."""
    return _READERS.first(lambda reader: reader.sniff(path, head))


def _detect_directory(path: Path) -> Reader:
    """The one known format among a folder's files (others, e.g. checksums or notes, are left to that format's
    reader); files of two known formats are an error."""
    files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    if not files:
        raise FlowscopeError(f"{path}: directory holds no files")
    found: dict[str, list[Path]] = {}
    by_name: dict[str, Reader] = {}
    for file in files:
        try:
            if file.stat().st_size == 0:  # e.g. a capture just started: no format yet, and nothing to read
                continue
            head = head_bytes(file)
        except (OSError, FlowscopeError):  # gone since the listing (rotation) or unreadable: its reader will say
            continue
        reader = _sniff(file, head)
        if reader is not None:
            found.setdefault(reader.name, []).append(file)
            by_name[reader.name] = reader
    if len(found) > 1:
        kinds = "; ".join(f"{name}: {len(group)} file(s), e.g. {group[0].name}" for name, group in found.items())
        raise FlowscopeError(f"{path}: holds files of more than one format ({kinds}); read them separately")
    if not found:
        raise FlowscopeError(f"{path}: no file in it is in a known format (e.g. {files[0].name}); use --format")
    return by_name[next(iter(found))]


def grouped(paths: Sequence[Path], fixed: Reader | None = None) -> list[tuple[Reader, list[Path]]]:
    """The inputs in the order given, consecutive ones of one format together (so a list of captures stays
    one continuous stream); every input is of format ``fixed`` when given."""
    groups: list[tuple[Reader, list[Path]]] = []
    for path in paths:
        reader = fixed or detect(path)
        if groups and groups[-1][0] is reader:
            groups[-1][1].append(path)
        else:
            groups.append((reader, [path]))
    return groups


def get(name: str) -> Reader:
    """The reader called ``name``, importing format modules only until it is registered."""
    reader = _READERS.first(lambda reader: reader.name == name)
    if reader is None:
        raise FlowscopeError(f"unknown format {name!r} (known: {', '.join(readers()) or 'none'})")
    return reader
