"""Process-wide C-heap policy for batch-at-a-time array work (glibc; elsewhere these do nothing).

Decoding, metering and CSV parsing allocate and free hundreds of batch-sized arrays (0.1-30 MiB).
With glibc's defaults most are mapped fresh and unmapped on free, so every batch faults its
memory in again and the kernel zeroes it: up to a third of the CPU time was system time.
Sources that work this way call ``keep_freed_memory`` when they open; jobs that end by joining
many batches into a few large arrays call ``return_freed_memory`` to drop the holes left behind.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable

import pyarrow as pa

# glibc mallopt parameters, and the values for batch-at-a-time array code
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 256 << 20


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
        pa.set_memory_pool(pa.system_memory_pool())


def return_freed_memory(*, arrow: bool = False) -> None:
    """Give the C heap's free pages back to the system (glibc's malloc_trim); ``arrow``: Arrow's pool's too
    (mimalloc keeps freed pages for reuse)."""
    trim = _libc_function("malloc_trim")
    if trim is not None:
        trim(0)
    if arrow:
        pa.default_memory_pool().release_unused()
