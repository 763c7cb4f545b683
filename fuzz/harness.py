"""What every fuzz target shares: seed files from ../shared/testdata, a scratch file, datagram framing.

It imports nothing from flowscope: the runner imports a target (and through it flowscope) only inside
``atheris.instrument_imports``, and a flowscope module imported before that would not be instrumented.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTDATA = Path(os.environ.get("FLOWSCOPE_TESTDATA", ROOT.parent / "shared" / "testdata"))
"""Third-party test data (never copied into the repository): the seeds are read from it at run time."""

SEPARATOR = b"\n--next-datagram--\n"
"""Splits one fuzz input into several datagrams / messages (a batch, as the collector decodes them)."""


def seed_files(*patterns: str, max_bytes: int = 1 << 20) -> list[Path]:
    """Files of ``TESTDATA`` matching the glob ``patterns``, small enough to be useful seeds."""
    found = {p for pattern in patterns for p in TESTDATA.glob(pattern) if p.is_file()}
    return sorted(p for p in found if 0 < p.stat().st_size <= max_bytes)


def read_seeds(*patterns: str, max_bytes: int = 1 << 20) -> Iterator[bytes]:
    for path in seed_files(*patterns, max_bytes=max_bytes):
        yield path.read_bytes()


def join_datagrams(datagrams: Iterable[bytes]) -> bytes:
    return SEPARATOR.join(datagrams)


def split_datagrams(data: bytes) -> list[bytes]:
    return data.split(SEPARATOR)


SCRATCH_ENV = "FLOWSCOPE_FUZZ_SCRATCH"


class Scratch:
    """One file per target, rewritten for every input (readers take paths, as ``flowscope read`` does).

    It lives in the runner's work folder (``SCRATCH_ENV``, removed with it), else in a fresh temporary folder.
    """

    def __init__(self, name: str) -> None:
        folder = os.environ.get(SCRATCH_ENV) or tempfile.mkdtemp(prefix="flowscope-fuzz-")
        self.path = Path(folder) / name

    def write(self, data: bytes) -> Path:
        self.path.write_bytes(data)
        return self.path
