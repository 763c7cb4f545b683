"""The receive process's queue: memory first, then the spool file, oldest batch first throughout."""

from __future__ import annotations

import os
import struct

from flowscope.collect.packed import SENDER, pack, packed_count
from flowscope.collect.receive import Backlog, SpoolCounters


def batches(count: int, size: int = 100) -> list[bytes]:
    return [bytes([i]) * size for i in range(count)]


def drain(backlog: Backlog, limit: int = 250) -> list[bytes]:
    out: list[bytes] = []
    while backlog:
        taken = backlog.take(limit)
        assert taken
        out += taken
    return out


def test_memory_then_spool_keeps_the_order(tmp_path):
    backlog = Backlog(memory=300, spool=10_000, spool_dir=str(tmp_path))
    data = batches(10)
    for batch in data[:6]:
        backlog.put(batch)
    assert backlog.held == 300 and backlog.spooled > 0  # three in memory, three spooled
    first = backlog.take(250)
    assert first == data[:3]  # memory first, the spool only once memory is empty
    backlog.put(data[6])  # memory has room again, but older batches are in the spool: this one goes after them
    for batch in data[7:]:
        backlog.put(batch)
    assert first + drain(backlog) == data
    assert backlog.write_at == backlog.read_at == 0  # drained: the spool file starts over
    assert list(tmp_path.iterdir()) == []  # the spool is an unnamed file


def test_full_only_when_memory_and_spool_are(tmp_path):
    backlog = Backlog(memory=200, spool=500, spool_dir=str(tmp_path))
    for batch in batches(7):  # two in memory, five spooled (each with an 8-byte length)
        assert not backlog.full()
        backlog.put(batch)
    assert backlog.full()
    assert drain(backlog) == batches(7)


def test_the_spool_file_is_at_most_twice_the_bound(tmp_path):
    backlog = Backlog(memory=100, spool=250, spool_dir=str(tmp_path))
    data = batches(7)
    for batch in data[:4]:  # one in memory, three spooled (108 bytes each): 324 >= 250
        backlog.put(batch)
    assert backlog.full()
    assert backlog.take(1) == data[:1] and backlog.take(1) == data[1:2]  # 216 spooled: room again
    assert not backlog.full()
    for batch in data[4:6]:
        backlog.put(batch)
    assert backlog.take(1) + backlog.take(1) + backlog.take(1) == data[2:5]
    assert backlog.spooled == 108 and backlog.write_at == 540  # the file only starts over once drained
    assert backlog.full()  # at twice the bound: receiving waits for the drain
    assert drain(backlog) == data[5:6] and backlog.write_at == 0


def test_the_spool_stays_the_bound_while_memory_empties(tmp_path):
    backlog = Backlog(memory=200, spool=500, spool_dir=str(tmp_path))
    for batch in batches(7):
        backlog.put(batch)
    assert backlog.full()
    backlog.take(200)  # memory empties, the spool still holds five batches: still full
    assert backlog.held == 0 and backlog.full()
    backlog.take(1)  # one fewer spooled: room again
    assert not backlog.full()
    assert drain(backlog) == batches(7)[3:]


def test_without_a_spool_memory_is_the_bound():
    backlog = Backlog(memory=200)
    backlog.put(b"a" * 100)
    backlog.put(b"b" * 100)
    assert backlog.full()
    assert drain(backlog) == [b"a" * 100, b"b" * 100]


def test_a_spool_that_cannot_be_made_leaves_memory_alone_as_the_bound(tmp_path):
    backlog = Backlog(memory=100, spool=10_000, spool_dir=str(tmp_path / "missing"))
    for batch in batches(3):
        backlog.put(batch)  # nothing lost: the batches that do not fit in memory stay there (one each)
    assert backlog.spool_dir is None and backlog.full()
    assert drain(backlog) == batches(3)


def test_spooled_batches_are_counted_for_the_collector(tmp_path):
    counters, fd = SpoolCounters.create()
    try:
        seen_by_collector = SpoolCounters(fd)  # the other process's mapping of the same memory
    finally:
        os.close(fd)
    backlog = Backlog(memory=300, spool=10_000, spool_dir=str(tmp_path), counters=counters)
    one = pack(2, 0, struct.pack("=II", 50, 50), bytes(2 * SENDER), [memoryview(bytes(50))] * 2)
    for _ in range(5):  # two in memory (188 bytes each), three spooled
        backlog.put(one)
    assert seen_by_collector.read() == (3 * packed_count(one), 3 * len(one))
    drain(backlog)
    assert seen_by_collector.read() == (6, 3 * len(one))  # totals: draining does not take them back
