"""``flowscope read`` source for nfdump files: several files and directories, ft-profiler's selections.

The selections (``RecordSelection``, from ``flowscope read`` / ``flowscope profile``) keep records of
one exporter or input interface, drop non-IP records and stop after a number of records.
``columns`` (for programs, not the command line) names the flow columns the consumer needs:
the others are not decoded and stay null, which saves time and memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from flowscope.diagnostics import Skips
from flowscope.errors import FlowscopeError
from flowscope.nfdump import container
from flowscope.nfdump.options import RecordSelection
from flowscope.nfdump.records import FileState, Part, decode_parts, walk_block
from flowscope.readers.options import ReadOptions
from flowscope.readers.registry import Reader, register
from flowscope.schema import ADDRESS, conform

BATCH_RECORDS = 32_768  # about one nfcapd block: bounds memory, rate is the same


def expand(paths: Sequence[Path]) -> list[Path]:
    """Files as given; directories contribute their nfdump files (recursively, sorted by path)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
            files.extend(p for p in found if container.sniff(_head(p)))
        else:
            files.append(path)
    if not files:
        raise FlowscopeError(f"no nfdump files in {', '.join(map(str, paths))}")
    return files


def _head(path: Path) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read(4)
    except OSError:
        return b""


class NfdumpSource:
    """Yields flow batches of all files in order; bad blocks and records are counted in ``skips``."""

    def __init__(
        self,
        paths: Sequence[Path],
        selection: RecordSelection | None = None,
        *,
        columns: Iterable[str] | None = None,
    ) -> None:
        self.files = expand(paths)
        selected_by = {"src_addr", "sampler_address", "in_if"}  # what the selections read
        self.wanted = None if columns is None else frozenset(columns) | selected_by
        self.skips = Skips("records")
        selection = selection or RecordSelection()
        self.exporter = selection.exporter_address
        self.in_if = selection.in_if
        self.drop_arp = selection.drop_arp
        self.max_records = selection.max_records
        self._total = sum(p.stat().st_size for p in self.files)
        self._done = 0
        self.records_read = 0

    def progress(self) -> tuple[int, int | None]:
        return self._done, self._total

    def __iter__(self) -> Iterator[pa.Table]:
        for parts, state in self.record_runs():
            table = self._select(conform(decode_parts(parts, state, self.wanted)))
            if table.num_rows:
                yield table

    def record_runs(self) -> Iterator[tuple[list[Part], FileState]]:
        """The V3 records of all files in order, undecoded: batches of same-layout runs (about ``BATCH_RECORDS``
        records each, never empty) and the state of their file; at most ``max_records`` records in all. The
        other selections are not applied here (``__iter__`` applies them to the decoded tables)."""
        for index, path in enumerate(self.files):
            for parts, state in self._read_file(path, sum(p.stat().st_size for p in self.files[:index])):
                if self.max_records is not None:
                    left = self.max_records - self.records_read
                    if left <= 0:
                        return
                    parts = _first_records(parts, left)
                self.records_read += sum(len(part.records) for part in parts)
                yield parts, state
            if self.max_records is not None and self.records_read >= self.max_records:
                return

    def _read_file(self, path: Path, offset: int) -> Iterator[tuple[list[Part], FileState]]:
        """Batches of one file; ``offset`` is the input bytes of the files before it (for progress)."""
        try:
            handle = open(path, "rb")  # noqa: SIM115 (closed below, generator-safe)
        except OSError as exc:
            raise FlowscopeError(f"cannot read {path}: {exc}") from exc
        with handle:
            header = container.read_header(handle, path)
            state = FileState()
            parts: list[Part] = []
            pending = 0
            for block in container.iter_blocks(handle, path, header, self.skips):
                parts.extend(walk_block(block.payload, block.num_records, state, self.skips, pending))
                pending = parts[-1].ordinals[-1] + 1 if parts else 0
                self._done = offset + handle.tell()
                if pending >= BATCH_RECORDS:
                    yield parts, state
                    parts, pending = [], 0
            if parts:
                yield parts, state
        self._done = offset + path.stat().st_size

    def _select(self, table: pa.Table) -> pa.Table:
        """ft-profiler's nfdump selection: not ARP, one exporter, one input interface."""
        mask = None
        if self.drop_arp and table.num_rows:
            mask = _and(mask, pc.is_valid(_column(table, "src_addr", ADDRESS)))
        if self.exporter is not None:
            router = _column(table, "sampler_address", ADDRESS)
            mask = _and(mask, pc.fill_null(pc.equal(router, pa.scalar(self.exporter, ADDRESS)), False))
        if self.in_if is not None:
            mask = _and(mask, pc.fill_null(pc.equal(_column(table, "in_if", pa.uint32()), self.in_if), False))
        return table if mask is None else table.filter(mask)


def _first_records(parts: list[Part], count: int) -> list[Part]:
    """The parts holding the first ``count`` records (the last one cut short)."""
    kept: list[Part] = []
    for part in parts:
        if count <= 0:
            break
        if len(part.records) > count:
            part = Part(part.layout, part.records[:count], part.ordinals[:count])
        kept.append(part)
        count -= len(part.records)
    return kept


def _column(table: pa.Table, name: str, arrow_type: pa.DataType) -> pa.ChunkedArray | pa.Array:
    return table.column(name) if name in table.column_names else pa.nulls(table.num_rows, arrow_type)


def _and(mask: pa.Array | None, other: pa.Array) -> pa.Array:
    return other if mask is None else pc.and_(mask, other)


def open_source(paths: Sequence[Path], options: ReadOptions) -> NfdumpSource:
    return NfdumpSource(paths, options.selection, columns=options.columns)


READER = register(
    Reader(
        name="nfdump",
        description="nfdump 1.7 binary files (nfcapd.*; uncompressed, LZO, LZ4, BZ2)",
        sniff=lambda _path, head: container.sniff(head),
        open=open_source,
        shaping=lambda options: options.selection.shaping(),
    )
)
