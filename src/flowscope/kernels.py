"""Compiles flowscope's numba kernels into their on-disk cache, once, at install: ``python -m flowscope.kernels``
(``scripts/setup.sh`` runs it).

Every kernel is ``cache=True``: a process then loads compiled code (about 0.17 CPU s for numba's set-up on the
first call, after 0.18 s for ``import numba``) instead of compiling it (about 2 s). Without this step the first
command that encodes or decodes GoFlow2 messages after an install pays those seconds. numba compiles a kernel
once per combination of argument types, so the real entry points run on the array types they always get.
"""

from __future__ import annotations

import pyarrow as pa


def warm() -> None:
    from flowscope.diagnostics import Skips
    from flowscope.kafka import goflow2
    from flowscope.schema import conform

    table = conform(pa.table({"bytes": pa.array([1], pa.uint64())}))
    data, _ = goflow2.encode(table)
    goflow2.decode_payloads([data.tobytes()], Skips())


if __name__ == "__main__":
    warm()
