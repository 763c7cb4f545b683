"""Rebalances lose and duplicate nothing: a member joining, killed with SIGKILL, restarted, then leaving.

Two consumers share group G while a producer keeps writing. tansu settles a two-member group in ~25 s, so
every step waits for a condition (a member's assignment in its log, all flows stored) with a generous
deadline, never for a fixed time. A partition that moves resumes where the destination's positions say
its data ends; the restarted member's log shows it sought there (an offset >= 0, where a partition
without a recorded position shows librdkafka's -1001 and falls back to the group's committed offset).
"""

from __future__ import annotations

import re
import signal
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import psycopg
import pytest
from tests.helpers import wait_until
from tests.kafka.live import fresh_group, lake_ids, start_consumer
from tests.kafka.test_consume_postgres import database
from tests.kafka.test_workers import _from_exporters
from tests.materialize.conftest import postgres_server

from flowscope.db import postgres as pg
from flowscope.kafka.sink import KafkaSink
from flowscope.kafka.url import parse
from flowscope.lake.layout import Lake
from flowscope.lake.ledger import Ledger

__all__ = ["database", "postgres_server"]

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SETTLE_SECONDS = 150  # a two-member group on tansu: ~25 s per rebalance, several back to back on a busy machine


class Member:
    """A ``flowscope consume`` process whose log is read as it runs (its assignments show who holds what)."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.process = process
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)

    def assignments(self) -> list[dict[int, int]]:
        """Each ``assigned`` log line as {partition: offset sought}."""
        found = []
        for line in list(self.lines):
            match = re.search(r"assigned (.*)$", line)
            if match and match.group(1) != "nothing":
                found.append({int(p): int(o) for p, o in (part.split("@") for part in match.group(1).split(", "))})
        return found

    def holds_partitions(self) -> bool:
        return bool(self.assignments())

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout=60)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
        self._reader.join(timeout=10)
        return code

    def log(self) -> str:
        return "".join(self.lines[-40:])


class Producer:
    """Writes flows with consecutive ids (``bytes``) until stopped: the stream the members share."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.sink = KafkaSink(parse(f"kafka://{bootstrap}/{topic}?key=sampler_address&per_message=64"))
        self.sent = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopping.wait(0.1):
            table = _from_exporters(1_000, exporters=16)  # every partition gets data
            ids = np.arange(self.sent, self.sent + 1_000, dtype=np.uint64)
            self.sink.write(table.set_column(table.schema.get_field_index("bytes"), "bytes", [ids]))
            self.sink.flush()
            self.sent += 1_000

    def stop(self) -> int:
        self.stopping.set()
        self.thread.join(timeout=30)
        self.sink.close()
        return self.sent


def _postgres_ids(url: str) -> np.ndarray:
    with psycopg.connect(url) as con:
        if con.execute("SELECT to_regclass('flows')").fetchone() == (None,):
            return np.zeros(0, np.uint64)
        return np.array([row[0] for row in con.execute("SELECT bytes FROM flows")], np.uint64)


@pytest.mark.parametrize("store", ["lake", "postgresql"])
def test_members_joining_killed_and_leaving_lose_and_duplicate_nothing(
    kafka: str, topic: str, tmp_path: Path, store: str, request: pytest.FixtureRequest
) -> None:
    lake = tmp_path / "lake"
    if store == "lake":
        to: list[str] = []
        stored: Callable[[], np.ndarray] = lambda: lake_ids(lake)  # noqa: E731
        recorded_by_store: Callable[[], dict] = lambda: Ledger(Lake.at(lake)).positions()  # noqa: E731
    else:
        url = request.getfixturevalue("database")
        to = ["--to", url]
        stored = lambda: _postgres_ids(url)  # noqa: E731
        recorded_by_store = lambda: pg.read_positions(url)  # noqa: E731
    group = fresh_group()

    def positions() -> dict[int, int]:
        """{partition: next offset} as the store has them now."""
        return {int(key.rpartition("/")[2]): int(offset) for key, offset in recorded_by_store().items()}

    def member() -> Member:
        return Member(start_consumer(lake, kafka, topic, "--flush", "0.3", *to, group=group))

    producer = Producer(kafka, topic)
    members: list[Member] = []
    try:
        first = member()
        members.append(first)
        assert wait_until(lambda: stored().shape[0] > 0, timeout=60), first.log()
        joining = member()  # joins: the group splits the partitions between the two
        members.append(joining)
        assert wait_until(joining.holds_partitions, timeout=SETTLE_SECONDS), joining.log()
        assert joining.stop(signal.SIGKILL) == -signal.SIGKILL  # killed: its partitions go back to the first
        restarted = member()
        members.append(restarted)
        assert wait_until(restarted.holds_partitions, timeout=SETTLE_SECONDS), restarted.log()
        recorded = positions()  # every partition with data has had a position since the first member's flushes
        sought = {p: offset for assignment in restarted.assignments() for p, offset in assignment.items()}
        assert set(sought) & set(recorded), restarted.log()
        assert all(offset > 0 for p, offset in sought.items() if p in recorded), restarted.log()  # not from 0
        # the restarted member leaves cleanly: the first takes every partition back. (Not the first member:
        # tansu keeps a departed group leader as leader, and the group then never settles again.)
        assert restarted.stop() == 0, restarted.log()
        sent = producer.stop()
        assert wait_until(lambda: stored().shape[0] >= sent, timeout=SETTLE_SECONDS), first.log()
        assert first.stop() == 0, first.log()
    finally:
        producer.stop()
        for one in members:
            if one.process.poll() is None:
                one.stop(signal.SIGKILL)
    ids = stored()
    assert ids.shape[0] == sent, f"{ids.shape[0] - np.unique(ids).shape[0]} duplicates"
    assert np.array_equal(np.sort(ids), np.arange(sent, dtype=np.uint64))
