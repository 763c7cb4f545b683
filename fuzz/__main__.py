"""Run one fuzz target: ``python -m fuzz TARGET --seconds S`` (from the repository root).

The runner starts the target in a child process under a memory limit (``RLIMIT_AS``, plus libFuzzer's RSS
limit) with a per-input time-out, seeds its corpus from ../shared/testdata, and prints one summary line:
executions, executions per second, peak RSS, and whether a crash was found (exit status 1; the input is
kept in ``--artifacts`` and ``python -m fuzz TARGET --input FILE`` replays it with a plain traceback).
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

from fuzz.harness import SCRATCH_ENV

TARGETS = (
    "pcap", "pcapng", "netflow", "sflow", "nfdump", "csv", "jsonl", "goflow2", "goflow2_file", "filter", "mmdb",
    "networks", "parquet",
)  # fmt: skip
"""Module names in ``fuzz/targets/``, one per decoder entry point."""

SLACK_SECONDS = 120
"""Wall-clock allowance beyond ``--seconds`` (start-up, the seeds' first pass) before the child is killed."""


def _arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__.splitlines()[0])
    parser.add_argument("target", nargs="?", choices=TARGETS)
    parser.add_argument("--list", action="store_true", help="name the targets and exit")
    parser.add_argument("--seconds", type=int, default=60, help="fuzzing time (default 60)")
    parser.add_argument("--timeout", type=int, default=10, help="seconds one input may take (default 10)")
    parser.add_argument("--memory-mb", type=int, default=4096, help="address-space limit, RLIMIT_AS (default 4096)")
    parser.add_argument("--rss-mb", type=int, default=2048, help="resident memory limit (default 2048)")
    parser.add_argument("--max-len", type=int, help="largest input (default: the target's)")
    parser.add_argument("--corpus", type=Path, help="keep the corpus here (default: a temporary folder)")
    parser.add_argument("--artifacts", type=Path, default=Path("fuzz-artifacts"), help="where crashing inputs go")
    parser.add_argument("--input", type=Path, help="replay one input without the fuzzer (a plain traceback)")
    parser.add_argument("--seed", type=int, help="libFuzzer's random seed (default: a new one each run)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.list and args.target is None:
        parser.error("name a target (--list shows them)")
    return args


def _limit_memory(megabytes: int) -> None:
    limit = megabytes << 20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _load(name: str) -> ModuleType:
    """The target module, with flowscope's modules instrumented for coverage as they are imported."""
    import atheris

    with atheris.instrument_imports(include=["flowscope"]):
        return importlib.import_module(f"fuzz.targets.{name}")


def _child(args: argparse.Namespace) -> None:
    """Inside the limits: seed an empty corpus, then hand over to libFuzzer (which exits the process)."""
    import atheris

    _limit_memory(args.memory_mb)
    target = _load(args.target)
    corpus = args.corpus
    if not any(corpus.iterdir()):
        for number, seed in enumerate(target.seeds()):
            (corpus / f"seed-{number:04d}").write_bytes(seed[: args.max_len or target.MAX_LEN])
    args.artifacts.mkdir(parents=True, exist_ok=True)
    libfuzzer = [
        sys.argv[0],
        f"-max_total_time={args.seconds}",
        f"-timeout={args.timeout}",
        f"-rss_limit_mb={args.rss_mb}",
        f"-max_len={args.max_len or target.MAX_LEN}",
        f"-artifact_prefix={args.artifacts.resolve()}/{args.target}-",
        "-print_final_stats=1",
        *([f"-seed={args.seed}"] if args.seed is not None else []),
        str(corpus),
    ]
    atheris.Setup(libfuzzer, target.one_input)
    atheris.Fuzz()


def _replay(args: argparse.Namespace) -> None:
    _limit_memory(args.memory_mb)
    target = importlib.import_module(f"fuzz.targets.{args.target}")
    target.one_input(args.input.read_bytes())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss >> 10
    print(f"{args.target}: {args.input} handled (counted skips or a FlowscopeError), peak RSS {peak} MB")


def _stat(text: str, name: str) -> int:
    match = re.search(rf"stat::{name}:\s*(\d+)", text)
    return int(match.group(1)) if match else 0


def _replays_within_limits(args: argparse.Namespace, artifact: Path) -> bool:
    """Whether an input libFuzzer blamed for running out of memory runs alone in a fresh process under the
    same limits. The RSS of a long fuzzing process creeps up (pyarrow-heavy targets: about 1 MB/s under
    atheris, while replaying their whole corpus in a loop stays flat), so the limit can strike any input."""
    command = [sys.executable, "-m", "fuzz", args.target, "--input", str(artifact), "--memory-mb", str(args.memory_mb)]
    replay = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout * 6, check=False)
    peak = re.search(r"peak RSS (\d+) MB", replay.stdout)
    return replay.returncode == 0 and peak is not None and int(peak.group(1)) < args.rss_mb


def _parent(args: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix=f"flowscope-fuzz-{args.target}-"))
    try:
        corpus = args.corpus or work / "corpus"
        corpus.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "fuzz", args.target, "--child", "--corpus", str(corpus)]
        for flag in ("seconds", "timeout", "memory_mb", "rss_mb", "max_len", "artifacts", "seed"):
            value = getattr(args, flag)
            if value is not None:
                command += [f"--{flag.replace('_', '-')}", str(value)]
        started, started_at = time.monotonic(), time.time()
        try:
            child = subprocess.run(
                command, env={**os.environ, SCRATCH_ENV: str(work)}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                text=True, errors="replace", timeout=args.seconds + args.timeout + SLACK_SECONDS,
            )  # fmt: skip
        except subprocess.TimeoutExpired as exc:
            output = exc.output if isinstance(exc.output, str) else (exc.output or b"").decode(errors="replace")
            print(output[-4000:], file=sys.stderr)
            print(f"{args.target}: HUNG (no end after {time.monotonic() - started:.0f} s)")
            return 1
        runs = _stat(child.stdout, "number_of_executed_units")
        speed = _stat(child.stdout, "average_exec_per_sec")
        rss = _stat(child.stdout, "peak_rss_mb")
        found = [p for p in args.artifacts.glob(f"{args.target}-*") if p.stat().st_mtime >= started_at]
        failed = child.returncode != 0
        verdict = "0 crashes"
        if failed and "libFuzzer: out-of-memory" in child.stdout and found and _replays_within_limits(args, found[0]):
            failed = False
            verdict = f"0 crashes (stopped at the RSS limit; its last input {found[0]} replays within the limits)"
        elif failed:
            print(child.stdout[-6000:], file=sys.stderr)
            verdict = f"CRASH (exit {child.returncode}): {[str(p) for p in found]}"
        print(f"{args.target}: {runs} executions in {args.seconds} s, {speed} exec/s, peak RSS {rss} MB, {verdict}")
        return 1 if failed else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = _arguments(sys.argv[1:] if argv is None else argv)
    if args.list:
        print("\n".join(TARGETS))
        return 0
    if args.child:
        _child(args)
        return 0
    if args.input is not None:
        _replay(args)
        return 0
    return _parent(args)


if __name__ == "__main__":
    sys.exit(main())
