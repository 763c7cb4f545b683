"""``flowscope read DIR --workers 2`` against ``--workers 1`` on rotated capture directories, whole process.

    python benchmarks/bench_workers.py [--packets 2000000] [--hostile-packets 10000000] [--files 16]
                                       [--rounds 3] [--keep DIR] [--before SRC]

Writes two synthetic captures (``flowscope.demo.pcap``, as ``bench_meter.py`` does) and cuts each into
``--files`` rotated pieces with ``editcap -F pcap -c`` (as ``tcpdump -C`` would leave them):
- realistic: ``--packets`` whole packets in 100 k biflows over 600 s, 65 k client and 4 k server addresses
  (2 M packets: about 1.1 GB);
- hostile: ``--hostile-packets`` packets cut at 96 bytes, four packets per flow (high churn), a fresh client
  for nearly every flow (10 M packets: about 1.1 GB).
Then, round-robin for ``--rounds`` rounds after an unmeasured one, times ``flowscope read DIR -o flows.parquet
--workers N`` for N = 1 and 2 as a user runs it (a fresh process: start-up, imports, forks and output
writing included; active 300 s, idle 60 s). Prints median wall and CPU seconds (user + system of the
process and its workers), the largest peak of the summed proportional set size (PSS) of the process and
its workers (sampled every 20 ms from /proc), the ratio of the wall times (the goal: workers 2 <= 0.55x
workers 1), and checks that both write the same flows. ``--before SRC`` also times the source tree SRC (e.g. a
``git archive`` of an earlier commit's ``src``, run with ``PYTHONPATH=SRC``) in the same rounds, command by
command, so a change is measured against its parent under the same load.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from common import flowscope_command, machine, measure_in_subprocess

ACTIVE, IDLE = 300, 60
HOSTILE_SNAPLEN = 96
HOSTILE_PACKETS_PER_FLOW = 4
SAMPLE_SECONDS = 0.02


@dataclass
class Measured:
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    peak_mib: float = 0.0


def tree_pss_kib(pid: int) -> int:
    """Summed proportional set size of ``pid`` and its descendants (0 for those gone meanwhile): pages a forked
    worker shares with its parent count once, where summed RSS would count them in every process."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            rollup = Path(f"/proc/{current}/smaps_rollup").read_text()
            total += next((int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:")), 0)
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(child) for child in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return total


def run(command: list[str], into: Measured, source: str | None = None) -> None:
    """Time ``command``; ``source``: the source tree to run (``PYTHONPATH``), else this environment's."""
    started = time.perf_counter()
    env = None if source is None else {**os.environ, "PYTHONPATH": source}
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    peak = 0
    while process.poll() is None:
        peak = max(peak, tree_pss_kib(process.pid))
        time.sleep(SAMPLE_SECONDS)
    seconds = time.perf_counter() - started
    if process.returncode:
        raise SystemExit(f"{' '.join(command)} failed: {process.stderr.read().decode(errors='replace')}")
    into.wall.append(seconds)
    into.peak_mib = max(into.peak_mib, peak / 1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=2_000_000, help="Packets of the realistic capture.")
    parser.add_argument("--hostile-packets", type=int, default=10_000_000)
    parser.add_argument("--flows", type=int, default=100_000, help="Flows of the realistic capture.")
    parser.add_argument("--duration", type=float, default=600.0, help="Seconds of traffic in each capture.")
    parser.add_argument("--files", type=int, default=16, help="Rotated files per directory.")
    parser.add_argument("--rounds", type=int, default=3, help="Runs of every command (the median counts).")
    parser.add_argument("--inputs", default="realistic,hostile", help="Which directories to read.")
    parser.add_argument("--keep", type=Path, help="Write the captures and outputs here and keep them.")
    parser.add_argument("--before", help="Also time this source tree (PYTHONPATH) in the same rounds.")
    args = parser.parse_args()
    if shutil.which("editcap") is None:
        raise SystemExit("editcap is not installed (scripts/system-deps.sh installs tshark)")
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-workers-"))
    work.mkdir(parents=True, exist_ok=True)
    hostile_flows = args.hostile_packets // HOSTILE_PACKETS_PER_FLOW
    shapes = {
        "realistic": (args.packets, args.flows, 65535, 65_000, 4_000),
        "hostile": (args.hostile_packets, hostile_flows, HOSTILE_SNAPLEN, min(1 << 24, hostile_flows * 4), 100_000),
    }
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f}; whole processes; active {ACTIVE}s "
          f"idle {IDLE}s; median of {args.rounds} after a warm-up round")  # fmt: skip
    try:
        for name in args.inputs.split(","):
            packets, flows, snaplen, clients, servers = shapes[name]
            folder = work / f"{name}-{packets}"
            if not folder.is_dir():
                capture = work / f"{name}-{packets}.pcap"
                shape = [str(packets), str(flows), str(args.duration), str(snaplen), str(clients), str(servers)]
                measure_in_subprocess("write capture", "bench_meter", "write_capture", str(capture), *shape)
                folder.mkdir()
                per_file = -(-packets // args.files)
                subprocess.run(["editcap", "-F", "pcap", "-c", str(per_file), str(capture), str(folder / "cap.pcap")],
                               check=True)  # fmt: skip
                capture.unlink()
            size = sum(path.stat().st_size for path in folder.iterdir()) / 2**20
            codes = {"new": None, **({"before": args.before} if args.before else {})}
            results = {(code, workers): Measured() for code in codes for workers in (1, 2)}
            outputs = {key: work / f"{name}-{key[0]}-workers{key[1]}.parquet" for key in results}
            for round_number in range(args.rounds + 1):
                for (code, workers), measured in results.items():
                    outputs[code, workers].unlink(missing_ok=True)
                    command = flowscope_command(
                        "read", str(folder), "-o", str(outputs[code, workers]), "--workers", str(workers),
                        "--active", str(ACTIVE), "--idle", str(IDLE), "-q",
                    )  # fmt: skip
                    before = os.times()  # the CPU of reaped children: the command and the workers it waited for
                    run(command, measured if round_number else Measured(), codes[code])
                    after = os.times()
                    if round_number:
                        measured.cpu.append(
                            after.children_user + after.children_system - before.children_user - before.children_system
                        )
            same = all(_same_flows(outputs["new", 1], output) for output in outputs.values())
            print(f"\n{name}: {packets:,} packets, {flows:,} flows, snaplen {snaplen}, {len(list(folder.iterdir()))} "
                  f"files, {size:,.0f} MiB; load average {os.getloadavg()[0]:.1f}; same flows everywhere: "
                  f"{same}")  # fmt: skip
            print(f"  {'code':>6} {'workers':>7} {'wall s':>7} {'CPU s':>7} {'peak PSS':>9}  runs (wall s)")
            for (code, workers), measured in results.items():
                each = " ".join(f"{seconds:.2f}" for seconds in measured.wall)
                print(f"  {code:>6} {workers:>7} {statistics.median(measured.wall):7.2f} "
                      f"{statistics.median(measured.cpu):7.2f} {measured.peak_mib:5.0f} MiB  {each}")  # fmt: skip
            for code in codes:
                ratio = statistics.median(results[code, 2].wall) / statistics.median(results[code, 1].wall)
                print(f"  {code}: workers 2 / workers 1 wall time: {ratio:.2f}x (goal <= 0.55x)")
            if not same:
                raise SystemExit("the commands wrote different flows")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


def _same_flows(one: Path, two: Path) -> bool:
    import pyarrow.parquet as pq

    order = [(name, "ascending") for name in ("time_flow_start", "src_addr", "dst_addr", "src_port", "dst_port",
                                              "proto", "vlan_id", "time_flow_end")]  # fmt: skip
    return bool(pq.read_table(one).sort_by(order).equals(pq.read_table(two).sort_by(order)))


if __name__ == "__main__":
    main()
