"""``readers.lines.read_ahead``: items made on a second thread, handed over in order, errors and early stops
passed across."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from flowscope.errors import FlowscopeError
from flowscope.readers.lines import read_ahead


def test_items_come_in_order_made_on_another_thread() -> None:
    makers: list[threading.Thread] = []

    def items() -> Iterator[int]:
        for value in range(50):
            makers.append(threading.current_thread())
            yield value

    assert list(read_ahead(items())) == list(range(50))
    assert set(makers) == {makers[0]} and makers[0] is not threading.current_thread()


def test_an_error_reaches_the_caller_after_the_items_before_it() -> None:
    def items() -> Iterator[int]:
        yield 1
        yield 2
        raise FlowscopeError("row 3 is bad")

    seen = []
    with pytest.raises(FlowscopeError, match="row 3 is bad"):
        for value in read_ahead(items()):
            seen.append(value)
    assert seen == [1, 2]


def test_a_caller_that_stops_early_closes_the_items_on_their_thread() -> None:
    closed = threading.Event()
    made = 0

    def items() -> Iterator[int]:
        nonlocal made
        try:
            while True:
                made += 1
                yield made
        finally:
            closed.set()

    ahead = read_ahead(items())
    assert next(ahead) == 1
    ahead.close()
    assert closed.wait(5)
    assert made <= 4  # the one taken, one queued, one made while waiting: nothing runs on after the stop
