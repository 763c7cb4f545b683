"""The profile job's threads: results in the items' order, at most one in flight per thread, errors raised."""

from __future__ import annotations

import threading
import time

import pytest

from flowscope.profile import parallel


def test_each_keeps_the_order_of_the_items() -> None:
    assert parallel.each(lambda x: x * x, range(50)) == [x * x for x in range(50)]


def test_ordered_keeps_the_order_and_holds_few_results() -> None:
    running = 0
    most = 0
    lock = threading.Lock()

    def work(x: int) -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.002 * (x % 3))
        with lock:
            running -= 1
        return x

    taken = []
    for value in parallel.ordered(work, range(30)):
        taken.append(value)
    assert taken == list(range(30))
    assert most <= parallel.THREADS


def test_an_error_on_a_thread_reaches_the_caller() -> None:
    def work(x: int) -> int:
        if x == 7:
            raise ValueError("seven")
        return x

    with pytest.raises(ValueError, match="seven"):
        list(parallel.ordered(work, range(20)))
