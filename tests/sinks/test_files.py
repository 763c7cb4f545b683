"""JSON lines built column-wise mean what ``json.dumps`` of each row means, for every kind of value."""

from __future__ import annotations

import io
import json
import math
import os
import stat
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flowscope.schema import FLOW_SCHEMA, conform
from flowscope.sinks.files import FileSink, write_jsonl

TABLE = pa.table(
    {
        "escaped": pa.array(['a"b', "back\\slash", "ctl\x01\x1f\n\t", "ünï€😀", None, ""]),
        "plain": pa.array(["p", "q", "r", "s", "t", "u"]),
        "dictionary": pa.array(["x", "y", "x", None, "z", "x"]).dictionary_encode(),
        "signed": pa.array([1, -2, None, 2**63 - 1, 0, 5], pa.int64()),
        "unsigned": pa.array([2**64 - 1, 0, 1, None, 3, 4], pa.uint64()),
        "real": pa.array([1.5, float("nan"), float("inf"), None, 3.0, 1e20]),
        "flag": pa.array([True, False, None, True, True, False]),
        "quote_only": pa.array(['e"', "f", "g", "h", "i", "j"]),
        "all_null": pa.nulls(6, pa.string()),
    }
)


@pytest.mark.parametrize(
    "table",
    [TABLE, TABLE.slice(2, 3), pa.concat_tables([TABLE, TABLE]), TABLE.select(["plain"]), TABLE.slice(0, 0)],
)
def test_rows_mean_what_json_dumps_means(table: pa.Table) -> None:
    out = io.BytesIO()
    write_jsonl(table, out)
    lines = out.getvalue().decode("utf-8").splitlines()
    expected = [
        {key: None if isinstance(value, float) and not math.isfinite(value) else value for key, value in row.items()}
        for row in table.to_pylist()
    ]
    assert [json.loads(line) for line in lines] == expected
    assert all(list(json.loads(line)) == table.column_names for line in lines)  # keys in column order


def test_a_named_pipe_is_written_through_never_replaced(tmp_path: Path) -> None:
    """``-o /dev/null``, ``-o /dev/stdout`` or a FIFO: the bytes go to it; a temporary file renamed over it would
    replace the device (as root, /dev/null once became a regular file that way)."""
    fifo = tmp_path / "out.csv"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    sink = FileSink(fifo)
    sink.write(conform(pa.table({"bytes": pa.array([1, 2], pa.uint64())})))
    sink.close()
    reader.join(timeout=30)
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert received and received[0].count(b"\n") == 3 and not list(tmp_path.glob(".*"))


def test_parquet_files_are_snappy_without_dictionary_pages(tmp_path: Path) -> None:
    """The fastest Parquet to write (the lake's fresh files' codec and DuckDB's default; see ``FileSink.write``)."""
    path = tmp_path / "flows.parquet"
    sink = FileSink(path)
    sink.write(FLOW_SCHEMA.empty_table())
    sink.close()
    column = pq.ParquetFile(path).metadata.row_group(0).column(0)
    assert column.compression == "SNAPPY" and column.dictionary_page_offset is None
