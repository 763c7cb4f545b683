"""Rows -> Kafka messages: grouping by key, message sizes, every format's round trip."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from tests.helpers import flows

from flowscope import addresses
from flowscope.diagnostics import Skips
from flowscope.kafka.formats import FORMATS, to_messages


def _with_exporters(table: pa.Table, exporters: list[int | None]) -> pa.Table:
    values = np.array([e or 0 for e in exporters], np.uint32)
    valid = np.array([e is not None for e in exporters])
    column = addresses.from_ipv4(0xC0000200 + values, valid)
    return table.set_column(table.schema.get_field_index("sampler_address"), "sampler_address", column)


def test_messages_hold_one_key_in_order_and_nulls_together() -> None:
    exporters = [1, 2, None, 1, None, 2, 1]
    table = _with_exporters(flows(7), exporters)
    messages = to_messages(table, FORMATS["goflow2"], "sampler_address", per_message=2)
    assert messages.keys == [b"192.0.2.1", b"192.0.2.1", b"192.0.2.2", None]
    assert messages.flows.tolist() == [2, 1, 2, 2]
    decoded = [FORMATS["goflow2"].decode([v], Skips()).column("bytes").to_pylist() for v in messages.values]
    assert decoded == [[0, 3], [6], [1, 5], [2, 4]]  # each key's rows in their original order


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_every_format_round_trips_the_counters(fmt: str) -> None:
    table = flows(1000)
    messages = to_messages(table, FORMATS[fmt], None)
    skips = Skips()
    back = FORMATS[fmt].decode(messages.values, skips)
    assert skips.total == 0
    assert back.column("bytes").to_pylist() == table.column("bytes").to_pylist()
    assert pc.sum(back.column("packets")).as_py() == pc.sum(table.column("packets")).as_py()


def test_arrow_garbage_is_counted() -> None:
    skips = Skips()
    assert FORMATS["arrow"].decode([b"not arrow"], skips).num_rows == 0
    assert dict(skips.counts) == {"not an Arrow IPC stream of flows": 1}


def test_arrow_field_name_not_utf8_is_counted() -> None:
    """Found by fuzzing (fuzz/targets/goflow2.py): an IPC stream whose field name is not UTF-8 raised
    UnicodeDecodeError out of the consumer; it is one more message that is no Arrow stream of flows."""
    good = to_messages(flows(3), FORMATS["arrow"], None).values[0]
    broken = good.replace(b"src_port", b"\xb9rc_port", 1)
    skips = Skips()
    assert FORMATS["arrow"].decode([broken, good], skips).num_rows == 3
    assert dict(skips.counts) == {"not an Arrow IPC stream of flows": 1}


def test_an_arrow_message_expanding_past_the_bound_is_skipped_before_allocation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A zstd-compressed stream states its decompressed sizes; pyarrow allocated them (124 kB made 4.2 GB). The
    sizes are added up from the message headers first: a bomb (here 32 MiB against a bound lowered to 4 MiB)
    is a counted skip, found under tracemalloc's eye without the expansion ever being allocated."""
    import tracemalloc

    from flowscope.kafka import formats
    from flowscope.kafka.ipc_size import expanded_size
    from flowscope.schema import FLOW_SCHEMA

    monkeypatch.setattr(formats, "MAX_ARROW_MESSAGE_BYTES", 4 << 20)
    rows = 4 << 20  # one uint64 column of 32 MiB
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, FLOW_SCHEMA, options=pa.ipc.IpcWriteOptions(compression="zstd")) as writer:
        columns = {f.name: pa.nulls(rows, f.type) for f in FLOW_SCHEMA}
        columns["bytes"] = pa.array(np.zeros(rows, np.uint64))
        writer.write_table(pa.table(columns, schema=FLOW_SCHEMA))
    bomb = sink.getvalue().to_pybytes()
    del columns
    assert len(bomb) < 1 << 20 and expanded_size(bomb) > 32 << 20
    good = to_messages(flows(10), FORMATS["arrow"], None).values[0]
    assert 0 < expanded_size(good) < 10 * 1000
    skips = Skips()
    tracemalloc.start()
    try:
        assert FORMATS["arrow"].decode([bomb, good], skips).num_rows == 10
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert list(skips.counts) == ["Arrow message expanding past 4 MiB (a decompression bomb?)"]
    assert peak < 16 << 20


def test_arrow_messages_with_dictionaries_and_without_compression_are_sized() -> None:
    from flowscope.kafka.ipc_size import expanded_size

    table = pa.table({"type": pa.array(["netflow_v9", "sflow"] * 50).dictionary_encode()})
    for compression in (None, "zstd", "lz4"):
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema, options=pa.ipc.IpcWriteOptions(compression=compression)) as w:
            w.write_table(table)
        assert expanded_size(sink.getvalue().to_pybytes()) >= table.nbytes - 64


def test_arrow_stream_naming_a_flow_field_twice_is_counted() -> None:
    """Found by fuzzing (fuzz/targets/goflow2.py): a schema with ``time_flow_start`` twice raised pyarrow's
    KeyError out of the consumer."""
    twice = pa.table([pa.array([1, 2], pa.int64())] * 2, names=["time_flow_start", "time_flow_start"])
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, twice.schema) as writer:
        writer.write_table(twice)
    skips = Skips()
    assert FORMATS["arrow"].decode([sink.getvalue().to_pybytes()], skips).num_rows == 0
    assert dict(skips.counts) == {"not an Arrow IPC stream of flows": 1}
