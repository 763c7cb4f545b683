"""ClickHouse's own Protobuf format reads what flowscope writes (chdb: ClickHouse in-process)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from tests.conftest import shared_data, skip_or_fail
from tests.helpers import flows

from flowscope import addresses
from flowscope.kafka import goflow2
from flowscope.schema import column

pytestmark = pytest.mark.integration


def test_clickhouse_reads_our_flow_messages_field_by_field(tmp_path: Path) -> None:
    if importlib.util.find_spec("chdb") is None:
        skip_or_fail("chdb is not installed (the test extra)")
    import chdb

    proto = shared_data("goflow2-proto", "flow.proto")
    table = flows(500)
    mixed = addresses.parse_text(pa.array([f"2001:db8::{i:x}" if i % 3 else f"10.0.{i // 256}.{i % 256}"
                                           for i in range(500)]))  # fmt: skip
    table = table.set_column(table.schema.get_field_index("dst_addr"), "dst_addr", mixed)
    table = table.set_column(table.schema.get_field_index("type"), "type", pa.array(["ipfix"] * 500))
    data, _ = goflow2.encode(table)
    path = tmp_path / "flows.bin"
    path.write_bytes(data.tobytes())
    names = {f.column: column(f.column).goflow2.name for f in goflow2.FIELDS}  # type: ignore[union-attr]
    selected = ", ".join(f"hex({n}) AS hex_{n}" if f.kind == "address" else f"toString({n}) AS text_{n}"
                         for f, n in zip(goflow2.FIELDS, names.values(), strict=True))  # fmt: skip
    query = (f"SELECT {selected} FROM file('{path}', 'Protobuf') ORDER BY bytes "
             f"SETTINGS format_schema='{proto}:FlowMessage'")  # fmt: skip
    rows = [json.loads(line) for line in str(chdb.query(query, "JSONEachRow")).splitlines() if line]
    assert len(rows) == 500
    times = {name: table.column(name).cast(pa.int64()).fill_null(0).to_pylist()
             for name in ("time_received", "time_flow_start", "time_flow_end")}  # fmt: skip
    for f in goflow2.FIELDS:
        got = [row[("hex_" if f.kind == "address" else "text_") + names[f.column]] for row in rows]
        if f.kind == "address":
            matrix = addresses.to_matrix(table.column(f.column))
            v4 = addresses.is_ipv4_matrix(matrix)
            valid = np.asarray(table.column(f.column).is_valid())
            expected = [(bytes(m[12:]) if four else bytes(m)).hex().upper() if ok else ""
                        for m, four, ok in zip(matrix, v4, valid, strict=True)]  # fmt: skip
        elif f.kind == "time":
            expected = [str(v) for v in times[f.column]]
        elif f.kind == "enum":
            expected = ["IPFIX"] * 500
        else:
            expected = [str(v or 0) for v in table.column(f.column).to_pylist()]
        assert got == expected, f.column
