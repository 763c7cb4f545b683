"""The flow lake: a directory of hour-partitioned Parquet files, queried with DuckDB.

``LakeWriter`` publishes files atomically, ``open_lake`` gives a DuckDB connection
with ready views and SQL helpers, ``maintenance`` compacts and expires partitions.
"""

from flowscope.lake.layout import Lake
from flowscope.lake.sql import open_lake
from flowscope.lake.writer import LakeWriter

__all__ = ["Lake", "LakeWriter", "open_lake"]
