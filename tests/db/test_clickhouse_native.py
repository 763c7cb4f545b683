"""The numpy Native-block encoder gives byte for byte what clickhouse-driver's own column writers give."""

from __future__ import annotations

import socket

import numpy as np
import pyarrow as pa
import pytest
from clickhouse_driver.block import ColumnOrientedBlock
from clickhouse_driver.bufferedwriter import BufferedSocketWriter
from clickhouse_driver.context import Context
from clickhouse_driver.streams.native import BlockOutputStream

from flowscope.db.clickhouse_native import encode_block, encode_values

REVISION = 54413  # clickhouse-server 18.16's protocol revision


def driver_block(columns: list[tuple[str, str]], values: list[list], revision: int) -> bytes:
    """The block as clickhouse-driver writes it from Python values (the reference)."""
    context = Context()
    context.server_info = type("ServerInfo", (), {"used_revision": revision})()
    context.settings = {}
    context.client_settings = {
        "strings_as_bytes": True, "strings_encoding": "utf-8", "use_numpy": False,
        "input_format_null_as_default": False,
    }  # fmt: skip
    out, into = socket.socketpair()
    with out, into:
        writer = BufferedSocketWriter(out, 1 << 20)
        BlockOutputStream(writer, context).write(ColumnOrientedBlock(columns, values))
        out.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := into.recv(1 << 16):
            chunks.append(chunk)
    return b"".join(chunks)


def joined(parts: list) -> bytes:
    return b"".join(p if isinstance(p, bytes) else p.tobytes() for p in parts)


@pytest.mark.parametrize("revision", [REVISION, 54460])
def test_block_equals_the_drivers(revision):
    rng = np.random.default_rng(3)
    texts = [None, "", "netflow_v9", "é" * 70, "x" * 200, "y" * 20_000, "1:abc="]
    addresses = [rng.bytes(16) for _ in texts]
    addresses[1] = None
    columns = [
        ("Date", "Date"), ("TimeReceived", "UInt64"), ("SrcAS", "Nullable(UInt32)"),
        ("SrcAddr", "Nullable(FixedString(16))"), ("NextHop", "FixedString(16)"), ("Type", "Nullable(String)"),
        ("Community", "String"), ("Proto", "Nullable(UInt8)"), ("BytesRev", "UInt64"),
    ]  # fmt: skip
    n = len(texts)
    arrays = [
        pa.array(np.arange(n, dtype=np.uint16) + 19_000),
        pa.array(np.arange(n, dtype=np.int64) * 10**18).cast(pa.timestamp("ns", tz="UTC")),
        pa.array([None, 1, 2**32 - 1, None, 5, 6, 7], pa.uint32()),
        pa.array(addresses, pa.binary(16)),
        pa.array([a or bytes(16) for a in addresses], pa.binary(16)),
        pa.array(texts),
        pa.array([t or "" for t in texts]),
        pa.array([6, None, 17, 1, None, 58, 0], pa.uint8()),
        pa.array(np.arange(n, dtype=np.uint64) * 2**60),
    ]
    values = [
        [19_000 + i for i in range(n)],
        [i * 10**18 for i in range(n)],
        arrays[2].to_pylist(),
        addresses,
        [a or bytes(16) for a in addresses],
        [t.encode() if t is not None else None for t in texts],
        [(t or "").encode() for t in texts],
        arrays[7].to_pylist(),
        arrays[8].to_pylist(),
    ]
    # The driver takes dates as date objects: compare that column through its integer twin.
    columns_for_driver = [(name, "UInt16" if kind == "Date" else kind) for name, kind in columns]
    expected = driver_block(columns_for_driver, values, revision)
    mine = joined(encode_block(columns_for_driver, arrays, revision))
    assert mine == expected
    assert joined(encode_block(columns, arrays, revision)) == expected.replace(b"\x06UInt16", b"\x04Date")


def test_sliced_and_chunked_arrays_encode_their_own_rows():
    whole = pa.array(["a", None, "bcd", "é", "zz"])
    assert joined(encode_values("Nullable(String)", whole.slice(2, 2))) == b"\0\0" + b"\x03bcd" + b"\x02" + "é".encode()
    fixed = pa.array([bytes([i]) * 16 for i in range(4)], pa.binary(16)).slice(1, 2)
    assert joined(encode_values("FixedString(16)", fixed)) == bytes([1]) * 16 + bytes([2]) * 16


def test_unknown_type_is_refused():
    with pytest.raises(ValueError, match="Decimal"):
        encode_values("Decimal(9, 2)", pa.array([1]))


def test_chunked_columns_encode_as_one():
    chunked = pa.chunked_array([pa.array(["a", None]), pa.array(["bb"]), pa.array([], pa.string())])
    whole = pa.array(["a", None, "bb"])
    for ch_type in ("Nullable(String)", "String"):
        assert joined(encode_values(ch_type, chunked)) == joined(encode_values(ch_type, whole))
    numbers = pa.chunked_array([pa.array([1, None], pa.uint32()), pa.array([3], pa.uint32())])
    assert joined(encode_values("Nullable(UInt32)", numbers)) == b"\0\1\0" + bytes([1, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0])
