"""Flow tables in Parquet files as an input (flowscope's own ``-o x.parquet``, lake files, Spark or DuckDB exports)."""
