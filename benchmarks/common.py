"""Helpers every benchmark uses: run a measured step in its own process, report rate and peak memory."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Measurement:
    name: str
    seconds: float
    units: int
    peak_rss_mib: float

    @property
    def rate(self) -> float:
        return self.units / self.seconds if self.seconds else float("inf")


def measure_in_subprocess(name: str, module: str, function: str, *args: str, external: bool = False) -> Measurement:
    """Run ``module.function(*args)`` in a fresh interpreter; it returns (seconds, units) of the timed part.

    A fresh process per step makes peak RSS (ru_maxrss) belong to that step alone. ``external``: the step
    runs an external tool, so the tool's CPU seconds and peak RSS (the step's children) are reported.
    """
    usage = "resource.getrusage(resource.RUSAGE_CHILDREN)" if external else "resource.getrusage(resource.RUSAGE_SELF)"
    code = (
        "import json, resource, sys\n"
        f"sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})\n"
        f"from {module} import {function} as step\n"
        f"seconds, units = step(*{list(args)!r})\n"
        f"usage = {usage}\n"
        + ("seconds = usage.ru_utime + usage.ru_stime\n" if external else "")
        + "print(json.dumps([seconds, units, usage.ru_maxrss / 1024]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    seconds, units, peak = json.loads(out.strip().splitlines()[-1])
    return Measurement(name, seconds, units, peak)


def as_installed() -> None:
    """Run this step as flowscope runs where it is installed: without pandas.

    flowscope does not depend on pandas; the bench environment has it only for the peers (NFStream, the pandas
    baseline). Where pandas is importable, pyarrow imports it on its first conversion of a numpy array,
    about 0.3 s of start-up that a flowscope install never pays. Call before that first conversion.
    """
    from flowscope.memory import without_pandas  # here: a peer's step must not import pyarrow with this module

    _STEP.enter_context(without_pandas())  # for the rest of this step's process


_STEP = contextlib.ExitStack()


@dataclass
class ToolRun:
    seconds: float
    cpu_seconds: float
    peak_rss_mib: float


def run_tool(command: list[str], stdout_path: str = os.devnull) -> ToolRun:
    """Run an external peer to completion: its wall time, CPU seconds and peak RSS alone (from wait4)."""
    started = time.perf_counter()
    with open(stdout_path, "wb") as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(command, stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        if status:
            err.seek(0)
            raise SystemExit(f"{' '.join(command)} failed (status {status}): {err.read().decode(errors='replace')}")
    return ToolRun(seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


def flowscope_command(*args: str) -> list[str]:
    """``flowscope ARGS`` as a user runs it: a fresh interpreter, so start-up, imports and JIT loading are timed.

    ``python -m flowscope`` of this interpreter, so the tree on ``PYTHONPATH`` (or the install) is what runs.
    """
    return [sys.executable, "-m", "flowscope", *args]


@dataclass
class Runs:
    """Repeated whole-process runs of one command: median wall and CPU seconds, the largest peak RSS."""

    name: str
    runs: list[ToolRun]

    @property
    def seconds(self) -> float:
        return statistics.median(run.seconds for run in self.runs)

    @property
    def cpu_seconds(self) -> float:
        return statistics.median(run.cpu_seconds for run in self.runs)

    @property
    def peak_rss_mib(self) -> float:
        return max(run.peak_rss_mib for run in self.runs)


def run_rounds(commands: dict[str, Callable[[], list[str]]], rounds: int) -> dict[str, Runs]:
    """Run every command once per round, round-robin, so a change in machine load hits all sides alike.

    Each value is called before its run (to clear the previous run's output) and returns the command line.
    A first, unmeasured round puts the inputs in the page cache for every side and lets Python write the
    bytecode caches an install has (``PYTHONDONTWRITEBYTECODE`` is dropped for the runs: pip compiles
    installed modules, so users do not compile flowscope's ~70 modules, 0.15 s, on every command).
    """
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    results = {name: Runs(name, []) for name in commands}
    for round_number in range(rounds + 1):
        for name, prepare in commands.items():
            run = run_tool(prepare())
            if round_number:
                results[name].runs.append(run)
    return results


def print_runs(
    title: str, results: dict[str, Runs], units: int, unit: str, peers: Sequence[str], cpu_peer: str | None = None
) -> None:
    """One table of whole-process runs: median wall and CPU seconds, ``unit``s per wall second, the speed against
    each of ``peers`` in wall time (headed by the peer's first word) and against ``cpu_peer`` in CPU time, the
    largest peak RSS and the wall time of every run."""
    name_width = max(len(name) for name in results) + 2
    ratios = [(f"vs {peer.split()[0]}", results[peer].seconds, "seconds") for peer in peers]
    if cpu_peer is not None:
        ratios.append(("(CPU)", results[cpu_peer].cpu_seconds, "cpu_seconds"))
    heads = "".join(f" {label:>{max(len(label), 7)}}" for label, _, _ in ratios)
    print(f"\n{title}")
    rate = unit + "/s"
    print(f"  {'command':<{name_width}} {'wall s':>7} {'CPU s':>7} {rate:>11}{heads} {'peak RSS':>10}  runs (wall s)")
    for name, runs in results.items():
        cells = "".join(
            f" {reference / getattr(runs, field):>{max(len(label), 7) - 1}.2f}x" for label, reference, field in ratios
        )
        each = " ".join(f"{run.seconds:.2f}" for run in runs.runs)
        print(
            f"  {name:<{name_width}} {runs.seconds:7.2f} {runs.cpu_seconds:7.2f} {units / runs.seconds:11,.0f}"
            f"{cells} {runs.peak_rss_mib:6.0f} MiB  {each}"
        )


def timed(action: Callable[[], int]) -> tuple[float, int]:
    started = time.perf_counter()
    units = action()
    return time.perf_counter() - started, units


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def print_comparison(title: str, unit: str, ours: Measurement, peer: Measurement) -> None:
    print(f"\n{title}")
    for m in (ours, peer):
        print(f"  {m.name:<34} {m.seconds:8.3f} s  {m.rate:14,.0f} {unit}/s  peak RSS {m.peak_rss_mib:8.1f} MiB")
    print(f"  ratio (flowscope / peer rate): {ours.rate / peer.rate:.2f}x")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def fresh_flows_parquet(workdir: str, rows: int) -> tuple[Path, Path]:
    """An emptied work directory and ``rows`` synthetic flows (50 k clients, 200 k servers) written to a Parquet
    file in it: the input the lake and store benchmarks start from."""
    import pyarrow.parquet as pq

    from flowscope.demo.traffic import synthetic_flows
    from flowscope.schema import FLOW_SCHEMA

    work = Path(workdir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    source = work / "input.parquet"
    with pq.ParquetWriter(source, FLOW_SCHEMA) as writer:
        for batch in synthetic_flows(rows, days=2, hosts=50_000, servers=200_000):
            writer.write_table(batch)
    return work, source
