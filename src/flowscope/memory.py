"""Process-wide memory policy: the C heap for batch-at-a-time array work (glibc; elsewhere these do
nothing), and pandas kept out of processes bounded in memory. pyarrow is imported where it is used: the
executable settles Arrow's allocator (``bound_arrow_pool_for``) before pyarrow loads.

Decoding, metering and CSV parsing allocate and free hundreds of batch-sized arrays (0.1-30 MiB).
With glibc's defaults most are mapped fresh and unmapped on free, so every batch faults its
memory in again and the kernel zeroes it: up to a third of the CPU time was system time.
Sources that work this way call ``keep_freed_memory`` when they open; jobs that end by joining
many batches into a few large arrays call ``return_freed_memory`` to drop the holes left behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import sys
from collections.abc import Callable, Iterator, Sequence

# glibc mallopt parameters, and the values for batch-at-a-time array code
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 256 << 20
BOUND_MMAP_THRESHOLD = 256 << 10  # and for processes held to a memory bound (bound_freed_memory)
BOUND_TRIM_THRESHOLD = 1 << 20
ARROW_POOL_VARIABLE = "ARROW_DEFAULT_MEMORY_POOL"
BOUND_COMMANDS = frozenset({"collect"})
"""Commands whose process is held to a memory bound (``bound_freed_memory``), so Arrow's C++ pool too."""


@functools.cache
def _libc_function(name: str) -> Callable[..., int] | None:
    try:
        return getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError, TypeError):  # not glibc, or no C library handle
        return None


def keep_freed_memory(*, arrow: bool = False) -> None:
    """Serve batch-sized blocks from the heap and keep up to 256 MiB of it free for the next batch.

    ``arrow`` also moves Arrow's default pool onto that heap (mimalloc, pyarrow's default, hands
    freed pages back inside huge-page regions that are then zeroed again). Buffers remember their
    pool, so arrays made before the switch stay valid.
    """
    mallopt = _libc_function("mallopt")
    if mallopt is not None:
        mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    if arrow:
        import pyarrow as pa

        pa.set_memory_pool(pa.system_memory_pool())


def one_heap() -> None:
    """Threads started from now on allocate from the main heap, not from an arena of their own each.

    For jobs whose threads share out work on whole columns (``flowscope profile``): arrays made on one thread
    and freed on another left glibc's per-thread arenas holding freed memory the others could not use. Measured
    on a 10 M-record nfcapd file (two threads, load 2.4): peak RSS 970-998 MiB with per-thread arenas, 805 MiB
    with one heap (as with one thread), CPU the same within the noise (9.3-9.4 s).
    """
    mallopt = _libc_function("mallopt")
    if mallopt is not None:
        mallopt(M_ARENA_MAX, 1)


def bound_freed_memory() -> None:
    """Hand batch-sized blocks back to the system as they are freed: for long-running processes held to a
    memory bound (the collector), the opposite trade to ``keep_freed_memory``.

    glibc raises its mmap threshold to the largest block freed (up to 32 MiB), after which batch arrays come
    from the heap and stay with the process; a fixed 256 KiB threshold maps each one and unmaps it on free.
    Arrow's allocations go to the same heap rather than to mimalloc, which keeps freed pages for reuse.
    Measured (``bench_collect.py``, 1 M NetFlow v9 flows unpaced, load average 13-15): the collector process
    peaked at 231 MiB with the defaults, 185 MiB with Arrow on jemalloc, 173 MiB with this.
    """
    import pyarrow as pa

    mallopt = _libc_function("mallopt")
    if mallopt is not None:
        mallopt(M_MMAP_THRESHOLD, BOUND_MMAP_THRESHOLD)
        mallopt(M_TRIM_THRESHOLD, BOUND_TRIM_THRESHOLD)
    pa.set_memory_pool(pa.system_memory_pool())


def bound_arrow_pool_for(args: Sequence[str]) -> None:
    """Before pyarrow loads, for a command held to a memory bound (``BOUND_COMMANDS``): Arrow's C++ default
    pool on the C heap as well (``ARROW_DEFAULT_MEMORY_POOL=system``, unless the variable is set already).

    ``bound_freed_memory`` moves pyarrow's default pool, but Arrow code that gets no pool from Python takes
    the one libarrow chose when it loaded, mimalloc: the Parquet writer's encoders, dictionaries and page
    buffers among them (pyarrow sets no pool on ``WriterProperties``). mimalloc kept what they freed: after a
    1 M-flow burst 28 MiB of the collector's RSS lay in its 1 GiB arena. With the C heap throughout, the
    collector process peaked at 167-169 MiB against 191-199 MiB (``bench_collect.py``'s stream, NetFlow v9
    unpaced, ``--no-rollups``, two alternated pairs, load 4-5), for 0.4 s more CPU per 1 M flows (2.08-2.26
    -> 2.49-2.65 s: the heap maps and zeroes what mimalloc reused). Only the variable, read as libarrow loads,
    chooses that pool; the collector's processes (``--workers``) inherit it.
    """
    if BOUND_COMMANDS.intersection(args) and "pyarrow" not in sys.modules:
        os.environ.setdefault(ARROW_POOL_VARIABLE, "system")


def return_freed_memory(*, arrow: bool = False) -> None:
    """Give the C heap's free pages back to the system (glibc's malloc_trim); ``arrow``: Arrow's pool's too
    (mimalloc keeps freed pages for reuse)."""
    trim = _libc_function("malloc_trim")
    if trim is not None:
        trim(0)
    if arrow:
        import pyarrow as pa

        pa.default_memory_pool().release_unused()


@contextlib.contextmanager
def without_pandas() -> Iterator[None]:
    """Meanwhile, importing pandas fails in this process, as where it is not installed.

    flowscope never uses pandas, but where it is installed (an environment with pyspark, say) pyarrow imports
    it on its first conversion (``pa.array`` of anything): 55 MiB of RSS and 0.3 s (pyarrow 26, pandas 2.3).
    pyarrow remembers that the import failed, so conversions stay pandas-free after the block too.
    """
    finder = leave_out_pandas()
    try:
        yield
    finally:
        sys.meta_path.remove(finder)


def leave_out_pandas() -> _WithoutPandas:
    """From now on, importing pandas fails in this process (``without_pandas`` for a block); the finder that
    refuses it, first on ``sys.meta_path``."""
    finder = _WithoutPandas()
    sys.meta_path.insert(0, finder)
    return finder


class _WithoutPandas:
    """A finder of ``sys.meta_path`` (its protocol is this one method; subclassing ``importlib.abc.MetaPathFinder``
    imported importlib.resources and tempfile: 10-15 ms of every command's start-up)."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name.partition(".")[0] == "pandas":
            raise ImportError("pandas is left out of this process (flowscope.memory.without_pandas)")
