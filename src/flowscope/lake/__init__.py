"""The flow lake: a directory of hour-partitioned Parquet files (queried through ``flowscope.query``).

``layout`` says where files live and how they are published and locked, ``LakeWriter``
publishes files atomically, ``maintenance`` compacts and expires partitions.

``LakeWriter`` loads on first use: ``layout`` is stdlib only, and the command line imports it for every
command (``--lake``'s default), where the writer brought numpy and pyarrow into ``flowscope --help``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flowscope.lake.layout import Lake

if TYPE_CHECKING:
    from flowscope.lake.writer import LakeWriter

__all__ = ["Lake", "LakeWriter"]


def __getattr__(name: str) -> object:
    if name == "LakeWriter":
        from flowscope.lake.writer import LakeWriter

        return LakeWriter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
