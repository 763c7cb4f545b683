"""Compiles flowscope's numba kernels into their on-disk cache, once, at install (``scripts/setup.sh``).

Every kernel is ``cache=True``: a process loads compiled code from the cache (about 0.1 s for all of them)
instead of compiling (about 1 s). Without ``warm`` the first command run after an install pays that second.
Captures named to ``flowscope read`` are memory-mapped (read-only buffers), other inputs are read into
writable ones; numba compiles each kernel once per kind of buffer, so both are warmed.
"""

from __future__ import annotations

import numpy as np


def warm() -> None:
    from flowscope.capture import pcap, pcapng

    for writeable in (True, False):
        buf = np.zeros(64, np.uint8)
        buf.flags.writeable = writeable
        pcap._walk(buf, 0, False)
        pcapng._walk(buf, False)
