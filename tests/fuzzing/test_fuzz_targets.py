"""Every fuzz target (fuzz/targets/) works, and in the slow tier each one fuzzes for a bounded time with 0 crashes.

The slow test runs ``python -m fuzz TARGET --seconds S`` in a subprocess (its own memory limit and per-input
time-out): ``FLOWSCOPE_FUZZ_SECONDS`` (default 8) per target; with start-up and the seeds' first pass a target
took 18-23 s of wall time on the shared two-core machine, so the ten stay near 3 minutes of CI. Longer runs and
their figures: docs/RELIABILITY.md, "Fuzzing".
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import sys

import pytest
from fuzz.__main__ import TARGETS
from tests.conftest import ROOT, shared_data, skip_or_fail

SECONDS = int(os.environ.get("FLOWSCOPE_FUZZ_SECONDS", "8"))
SEED = os.environ.get("FLOWSCOPE_FUZZ_SEED", "1")
"""A fixed seed: CI explores the same inputs every run (a new crash shows up in the longer runs, never as a flake)."""


@pytest.mark.parametrize("name", TARGETS)
def test_target_takes_degenerate_inputs(name: str) -> None:
    """Each target's entry point, called directly: nothing, one byte, zeros, and a separator alone."""
    target = importlib.import_module(f"fuzz.targets.{name}")
    for data in (b"", b"\x00", bytes(64), b"\x01" + b"\n--next-datagram--\n" * 3, b"\xff" * 300):
        target.one_input(data)


@pytest.mark.slow
@pytest.mark.parametrize("name", TARGETS)
def test_target_survives_fuzzing(name: str) -> None:
    shared_data("pcap")
    if importlib.util.find_spec("atheris") is None:
        skip_or_fail("atheris is not installed (pip install -e .[test])")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    run = subprocess.run(
        [sys.executable, "-m", "fuzz", name, "--seconds", str(SECONDS), "--seed", SEED,
         "--artifacts", str(ROOT / "fuzz-artifacts")],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-6000:]
    assert f"{name}: " in run.stdout and "0 crashes" in run.stdout
