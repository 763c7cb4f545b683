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


def _cut_gzip_lines(tmp_path, damage: str):
    import gzip

    import numpy as np

    from flowscope.readers.lines import LineInput, line_chunks

    values = np.random.default_rng(3).integers(0, 10**9, 200_000)  # gzip of about 1 MiB: several pieces
    text = "n\n" + "".join(f"{v}\n" for v in values)
    packed = gzip.compress(text.encode())
    path = tmp_path / "values.csv.gz"
    if damage == "cut":
        path.write_bytes(packed[: len(packed) // 2])
    else:  # bytes in the middle overwritten: the deflate stream becomes invalid there
        at = len(packed) * 3 // 4
        path.write_bytes(packed[:at] + b"\xff" * 64 + packed[at + 64 :])
    raw = LineInput(path)
    chunks = list(line_chunks(raw, commit_rows=1 << 20, commit_seconds=1.0, header=True))
    return raw, [int(v) for chunk in chunks[1:] for v in bytes(chunk).split()], [int(v) for v in values]


def test_a_cut_gzip_keeps_whole_lines_before_the_cut_and_says_so(tmp_path) -> None:
    """Every line read is a whole line of the file (the unfinished one is dropped: it may end inside a value),
    and the break is recorded for the reader's count."""
    raw, read, written = _cut_gzip_lines(tmp_path, "cut")
    assert raw.broken
    assert 0 < len(read) < len(written) and read == written[: len(read)]


def test_a_damaged_gzip_ends_the_input_with_the_break_recorded(tmp_path) -> None:
    """Deflate notices damage only some way past it (the CRC at the very end), so lines just before the error
    may be garbled as with any gunzip; the input ends there, counted, instead of failing the read."""
    raw, read, written = _cut_gzip_lines(tmp_path, "corrupt")
    assert raw.broken and "decompressing" in raw.broken
    assert 0 < len(read) < len(written) and read[:1000] == written[:1000]
