"""Opening what a user named (files, folders, ``-``) as one stream of batches and checkpoints.

Every front end that reads inputs (``flowscope read``, ``demo``, ingest endpoints) goes through
``open_inputs``. It groups inputs by format (``registry.grouped``) and cuts them into *units*,
the pieces the lake's ingest ledger records as done in one commit:

- a reader with no state across files (CSVs, nfdump files) makes one unit per file, a folder's
  files included: a read that fails part-way keeps the files it completed;
- a reader that carries state from file to file (captures: flows span rotated files; exports:
  templates) makes one unit of all its files, committed when the last one is read.

A unit whose every file the ledger already holds (same content, same output-shaping options) is
skipped and reported; ``again`` reads it anyway. Standard input is a stream: no units, no ledger.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from flowscope.errors import FlowscopeError
from flowscope.lake.ledger import Ingested, Ledger, digest_in_background, input_record
from flowscope.pipeline import Batch, Checkpoint, Source
from flowscope.readers import registry
from flowscope.readers.options import ReadOptions


@dataclass
class Unit:
    reader: registry.Reader
    paths: list[Path]
    files: list[Path]
    """The files ``paths`` stand for (a folder's files), each recorded in the ledger when the unit completes."""


PARALLEL_READER = "pcap"
"""The one reader ``--workers`` shares out (``capture/source.open_source``); others say they ran alone."""


@dataclass
class Inputs:
    """The batches and checkpoints of every unit not read before; iterate once."""

    units: list[Unit]
    options: ReadOptions
    ledgers: Sequence[Ledger]
    repeats: list[tuple[Path, Ingested]] = field(default_factory=list)
    sources: list[Source] = field(default_factory=list)
    stream: bool = False
    set_aside: list[Path] = field(default_factory=list)
    named_twice: list[Path] = field(default_factory=list)
    _sizes: list[int] = field(default_factory=list)

    @property
    def names(self) -> str:
        return ", ".join(dict.fromkeys(unit.reader.name for unit in self.units))

    def progress(self) -> tuple[int, int | None]:
        """(bytes read, total bytes) over all units (None while a stream's size is unknown)."""
        done = sum(source.progress()[0] for source in self.sources)
        if self.stream:
            return done, None
        finished = sum(self._sizes[: max(0, len(self.sources) - 1)])
        current = self.sources[-1].progress()[0] if self.sources else 0
        return finished + current, sum(self._sizes)

    def __iter__(self) -> Iterator[Batch | Checkpoint]:
        # Only a ledger records the inputs: without one (``-o FILE``, databases) their SHA-256 is not computed
        # (0.87 CPU s for the 1.06 GiB capture folder of bench_workers.py, which meters in 1.9 CPU s: issue 15)
        recorded = bool(self.ledgers) and not self.stream
        for unit in self.units:
            fingerprint = self.options.fingerprint(unit.reader.name)
            files = unit.files if recorded else []
            digests: list[Future[str]] = [digest_in_background(f) for f in files]
            source = unit.reader.open(unit.paths, self.options)
            self.sources.append(source)
            yield from source
            if self.stream:
                continue
            records = tuple(
                input_record(path, fingerprint, digest.result()) for path, digest in zip(files, digests, strict=True)
            )
            yield Checkpoint(inputs=records)  # with no ledger, an empty flush point for the destinations

    def save_health(self, lake_roots: Sequence[str | Path]) -> None:
        """Leave in each lake what the sources learnt of their senders, as a collector run would: exporter
        health, templates and sampling rates of recorded exports (sources with a ``save_health``)."""
        for source in self.sources:
            save = getattr(source, "save_health", None)
            if save is not None:
                for root in lake_roots:
                    save(root)

    def notes(self) -> list[str]:
        notes = [note for source in self.sources for note in getattr(source, "notes", ())]
        if self.repeats:
            path, seen = self.repeats[0]
            notes.append(
                f"{len(self.repeats)} input file(s) already in the lake were skipped, e.g. {path} "
                f"(in since {seen.committed}); --again reads them again"
            )
        if self.named_twice:
            notes.append(f"{', '.join(map(str, self.named_twice))}: named again in this read; read once")
        alone = sorted({unit.reader.name for unit in self.units} - {PARALLEL_READER})
        if self.options.workers > 1 and alone:
            notes.append(
                f"--workers {self.options.workers}: {', '.join(alone)} input(s) read in one process "
                f"(only captures metered into flows are shared out)"
            )
        if self.set_aside:
            notes.append(
                f"{len(self.set_aside)} file(s) in the given folders are not inputs of their format and were "
                f"not read: {[str(p) for p in self.set_aside[:3]]}"
            )
        return notes


def open_inputs(
    inputs: Sequence[str],
    options: ReadOptions,
    *,
    input_format: str | None = None,
    ledgers: Sequence[Ledger] = (),
    again: bool = False,
) -> Inputs:
    """Plan the read of ``inputs``: formats detected, units cut, repeats found in ``ledgers`` set aside."""
    paths = [Path(p) for p in inputs]
    for path in paths:
        if str(path) != "-" and not path.exists():
            raise FlowscopeError(f"{path}: no such file or directory")
    fixed = registry.get(input_format) if input_format else None
    if str(paths[0]) == "-":
        if len(paths) > 1:
            raise FlowscopeError("standard input (-) cannot be read together with other inputs")
        stdin = cast(io.BufferedReader, sys.stdin.buffer)
        reader = fixed or registry.detect(paths[0], head=stdin.peek(registry.SNIFF_BYTES))
        return Inputs([Unit(reader, paths, [])], options, ledgers, stream=True)
    plan = Inputs([], options, ledgers)
    paths = _once(paths, plan.named_twice)
    named: set[tuple[int, int]] = set()
    for reader, group in registry.grouped(paths, fixed):
        for unit in _units(reader, group, plan.set_aside):
            identities = {(stat.st_dev, stat.st_ino) for stat in (f.stat() for f in unit.files)}
            if identities and identities <= named:
                plan.named_twice.extend(unit.paths)
                continue
            named |= identities
            repeats = _recorded(unit, options, ledgers) if ledgers and not again else []
            if not repeats:
                plan.units.append(unit)
            elif len(repeats) == len(unit.files):
                plan.repeats.extend(repeats)
            else:
                new = len(unit.files) - len(repeats)
                raise FlowscopeError(
                    f"{', '.join(map(str, unit.paths))}: {len(repeats)} of its files are in the lake already and "
                    f"{new} are not; its {reader.name} files are read as one stream, so read the new ones by name "
                    "(or follow the folder with 'flowscope watch'); --again reads all of them again"
                )
    plan._sizes = [sum(f.stat().st_size for f in unit.files) for unit in plan.units]
    return plan


def _units(reader: registry.Reader, group: list[Path], set_aside: list[Path]) -> list[Unit]:
    """A continuous reader's group is one unit (given as named: the reader lists its folders itself, its files
    are those it takes); other
    readers get one unit per file, a folder's files that their format does not recognise set aside."""
    if reader.continuous:
        files = reader.lists(group) if reader.lists else [f for path in group for f in _files(path)]
        return [Unit(reader, group, files)]
    units = []
    for path in group:
        for file in _files(path):
            if file == path or reader.sniff(file, registry.head_bytes(file)):
                units.append(Unit(reader, [file], [file]))
            else:
                set_aside.append(file)
    return units


def _once(paths: list[Path], twice: list[Path]) -> list[Path]:
    """``paths`` without a second naming of the same file or folder (by device and inode: ``a.pcap ./a.pcap``),
    which would read its records twice; the dropped ones go to ``twice``."""
    seen: set[tuple[int, int]] = set()
    kept = []
    for path in paths:
        stat = path.stat()
        if (stat.st_dev, stat.st_ino) in seen:
            twice.append(path)
        else:
            seen.add((stat.st_dev, stat.st_ino))
            kept.append(path)
    return kept


def _files(path: Path) -> list[Path]:
    """A file, or a folder's non-empty visible files in name order (those its format's reader reads)."""
    if not path.is_dir():
        return [path]
    found = [p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")]
    return sorted(p for p in found if p.stat().st_size > 0)


def _recorded(unit: Unit, options: ReadOptions, ledgers: Sequence[Ledger]) -> list[tuple[Path, Ingested]]:
    """The unit's files every ledger holds already (a file is a repeat only if all destinations have it)."""
    fingerprint = options.fingerprint(unit.reader.name)
    repeats = []
    for path in unit.files:
        seen = [ledger.find(path, fingerprint) for ledger in ledgers]
        if all(seen) and seen[0] is not None:
            repeats.append((path, seen[0]))
    return repeats
