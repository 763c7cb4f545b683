"""Compiles flowscope's numba kernels into their on-disk cache, once, at install: ``python -m flowscope.kernels``
(``scripts/setup.sh`` runs it).

Every kernel is ``cache=True``: a process then loads compiled code (about 0.17 CPU s for numba's set-up on
the first call, after 0.18 s for ``import numba``) instead of compiling it (about 5 CPU s for all). Without
this step the first command that encodes or decodes GoFlow2 messages after an install pays those seconds.
numba compiles a kernel once per combination of argument types, so the real entry points run on the array
types they always get.
"""

from __future__ import annotations

from flowscope.kafka import goflow2


def warm() -> None:
    goflow2.prepare()


if __name__ == "__main__":
    warm()
