"""The profile job's other cores: numpy's and pyarrow's loops release the GIL, so work on whole columns (a gather,
a join, a chunk of the merge, a slice of the CSV text) split over threads runs on every core.

The job was one thread from end to end, while its column-wise steps are independent per column or per key-aligned
chunk. Whole ``flowscope -q profile`` processes on nfcapd files (LZ4), one thread vs these threads and the read-ahead
(build.py), alternated, median of 5, load ~1 (2 cores, shared): 10 M records 6.54 -> 5.07 s wall (realistic) and
6.22 -> 5.13 s (hostile), for 13-16 % more CPU (6.51 -> 7.38 s, 6.21 -> 7.18 s: two threads share memory bandwidth
and the heap); 2 M records 1.64 -> 1.28 s wall, 1.71 -> 1.79 CPU s.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

_T = TypeVar("_T")
_R = TypeVar("_R")

THREADS = max(1, min(4, os.cpu_count() or 1))
_pool: ThreadPoolExecutor | None = None


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(THREADS, thread_name_prefix="profile")
    return _pool


def each(function: Callable[[_T], _R], items: Iterable[_T]) -> list[_R]:
    """``function`` of every item, on the threads; results in the items' order."""
    return list(_executor().map(function, items))


def ordered(function: Callable[[_T], _R], items: Iterable[_T]) -> Iterator[_R]:
    """``function`` of every item in order, at most one per thread in flight (so at most that many results held)."""
    pending: deque[Future[_R]] = deque()
    for item in items:
        pending.append(_executor().submit(function, item))
        if len(pending) > THREADS:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()
