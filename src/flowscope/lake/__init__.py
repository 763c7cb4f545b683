"""The flow lake: a directory of hour-partitioned Parquet files (queried through ``flowscope.query``).

``layout`` says where files live and how they are published and locked, ``LakeWriter``
publishes files atomically, ``maintenance`` compacts and expires partitions.
"""

from flowscope.lake.layout import Lake
from flowscope.lake.writer import LakeWriter

__all__ = ["Lake", "LakeWriter"]
