"""Start-up: whole-process CPU of commands on tiny inputs, where imports are nearly all of it (issue 17).

    python benchmarks/bench_startup.py [--rounds 11] [--tree NAME=SRC ...]

Each command runs as a user runs it (``python -m flowscope ...``, a fresh process, bytecode cached), round-robin
with the other trees and the floors: the interpreter importing numpy and pyarrow with the submodules every reading
command needs (compute, parquet, csv), and that plus DuckDB for the commands that query. ``--tree old=/path/src``
runs another checkout's ``src`` beside this one (``PYTHONPATH``), for before/after figures.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from common import machine, print_runs, run_rounds

ROOT = Path(__file__).resolve().parents[1]
ARROW = "import numpy, pyarrow, pyarrow.compute, pyarrow.parquet, pyarrow.csv"
CSV = ROOT / "tests" / "csv" / "data" / "unicauca11_example.csv"  # eight flows of a CIC-style CSV


def commands(work: Path) -> dict[str, list[str]]:
    """The measured commands (arguments of ``flowscope``) on the inputs in ``work``."""
    lake = str(work / "lake")
    return {
        "read pcap -q": ["-q", "read", str(work / "tiny.pcap"), "-o", str(work / "o1.parquet")],
        "read pcap": ["read", str(work / "tiny.pcap"), "-o", str(work / "o2.parquet")],
        "read csv -q": ["-q", "read", str(work / "tiny.csv"), "-o", str(work / "o3.parquet")],
        "profile csv -q": ["-q", "profile", str(work / "tiny.csv"), "-o", str(work / "p.csv")],
        "query": ["--lake", lake, "-q", "query", "SELECT count(*) FROM flows"],
        "top": ["--lake", lake, "top", "-n", "3"],
        "--help": ["--help"],
        "top --help": ["top", "--help"],
    }


def fixed(line: list[str]) -> Callable[[], list[str]]:
    return lambda: line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--tree", action="append", default=[], metavar="NAME=SRC", help="another src tree to run")
    args = parser.parse_args()
    trees = {"this": str(ROOT / "src"), **dict(tree.split("=", 1) for tree in args.tree)}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        sys.path.insert(0, trees["this"])
        from flowscope.demo.pcap import write_synthetic_pcap

        write_synthetic_pcap(work / "tiny.pcap", packets=1000, flows=50)
        (work / "tiny.csv").write_bytes(CSV.read_bytes())
        runs: dict[str, Callable[[], list[str]]] = {}
        for name, arguments in commands(work).items():
            for tree, src in trees.items():
                line = ["env", f"PYTHONPATH={src}", sys.executable, "-m", "flowscope", *arguments]
                runs[f"{name} [{tree}]"] = fixed(line)
        runs["floor: numpy + pyarrow"] = fixed([sys.executable, "-c", ARROW])
        runs["floor: + duckdb"] = fixed([sys.executable, "-c", ARROW + ", duckdb"])
        os.environ.pop("PYTHONPATH", None)
        lake = ["env", f"PYTHONPATH={trees['this']}", sys.executable, "-m", "flowscope", "--lake", str(work / "lake")]
        subprocess.run([*lake, "-q", "read", str(work / "tiny.pcap")], check=True)  # what query and top read
        results = run_rounds(runs, args.rounds)
    print_runs(f"Start-up, tiny inputs ({machine()}; median of {args.rounds})", results, 1, "run", peers=[])


if __name__ == "__main__":
    main()
