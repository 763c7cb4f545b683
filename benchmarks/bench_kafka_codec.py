"""GoFlow2 FlowMessage encode and decode: flowscope's vectorised codec vs the official protobuf runtime (upb).

    python benchmarks/bench_kafka_codec.py [--flows 1000000] [--peer-flows 200000] [--per-message 256]

Input: the demo's synthetic flows (``flowscope.demo.traffic``: a fifth IPv6, every FlowMessage field
flowscope has that the traffic model fills), saved as Parquet. Each step runs in its own process and
is timed in CPU seconds of that process (user + system), so the rates are per core on a shared machine.
flowscope's steps are timed twice: whole (from importing the codec, so numba's import and the load of the
cached kernels are counted, through the one call on the whole input) and steady (a second call).

- encode: flowscope ``goflow2.encode`` of the whole table (length-delimited messages in one buffer);
  the peer sets every field of a ``FlowMessage`` from Python values (the columns converted to Python
  lists before the clock starts) and serialises it with its varint length prefix.
- decode: flowscope ``goflow2.decode_payloads`` of Kafka-sized payloads (``--per-message`` flows each,
  as the Kafka destination sends them) into flow-schema rows; the peer only ``ParseFromString``s each
  message body (split out before the clock starts), and builds no columns: a lower bound on its cost.
- arrow: the ``arrow`` format's bytes per flow, and its encode (grouping + one IPC stream per 65,536
  flows) and decode speed, for comparison with ``goflow2``.

The runtime is compiled from ../shared/testdata/goflow2-proto/flow.proto with grpcio-tools.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import numpy as np

from common import as_installed, machine, measure_in_subprocess, print_comparison

PROTO = Path(__file__).resolve().parents[2] / "shared" / "testdata" / "goflow2-proto" / "flow.proto"


def _cpu() -> float:
    times = os.times()
    return times.user + times.system


def generate_step(directory: str, flows: str, per_message: str) -> tuple[float, int]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from flowscope.demo.traffic import synthetic_flows
    from flowscope.kafka import goflow2

    table = pa.concat_tables(synthetic_flows(int(flows)))
    table = table.set_column(0, "type", pa.array(np.full(table.num_rows, "ipfix")))
    pq.write_table(table, Path(directory) / "flows.parquet")
    data, ends = goflow2.encode(table)
    cuts = np.concatenate([[0], ends[int(per_message) - 1 :: int(per_message)], [ends[-1]]])
    np.save(Path(directory) / "messages.npy", data)
    np.save(Path(directory) / "cuts.npy", np.unique(cuts))
    from flowscope.kafka.formats import FORMATS, to_messages

    arrow = to_messages(table, FORMATS["arrow"], None)
    (Path(directory) / "arrow-bytes").write_text(str(sum(map(len, arrow.values))))
    return 0.0, table.num_rows


def _arrow_step(directory: str, direction: str) -> tuple[float, int]:
    as_installed()
    import pyarrow.parquet as pq

    from flowscope.diagnostics import Skips
    from flowscope.kafka.formats import FORMATS, to_messages

    table = pq.read_table(Path(directory) / "flows.parquet")
    started = _cpu()
    messages = to_messages(table, FORMATS["arrow"], None)
    if direction == "encode":
        return _cpu() - started, table.num_rows
    started = _cpu()
    decoded = FORMATS["arrow"].decode(messages.values, Skips())
    return _cpu() - started, decoded.num_rows


def arrow_encode_step(directory: str) -> tuple[float, int]:
    return _arrow_step(directory, "encode")


def arrow_decode_step(directory: str) -> tuple[float, int]:
    return _arrow_step(directory, "decode")


def _payloads(directory: str) -> list[bytes]:
    data = np.load(Path(directory) / "messages.npy")
    cuts = np.load(Path(directory) / "cuts.npy")
    return [data[a:b].tobytes() for a, b in zip(cuts[:-1].tolist(), cuts[1:].tolist(), strict=True)]


def flowscope_encode_step(directory: str, calls: str) -> tuple[float, int]:
    """The last of ``calls`` encodes of the whole table; the first is timed from the codec's import on."""
    as_installed()
    import pyarrow.parquet as pq

    table = pq.read_table(Path(directory) / "flows.parquet")
    started = _cpu()
    from flowscope.kafka import goflow2

    for _ in range(int(calls) - 1):
        goflow2.encode(table)
        started = _cpu()
    _, ends = goflow2.encode(table)
    return _cpu() - started, int(ends.shape[0])


def flowscope_decode_step(directory: str, calls: str) -> tuple[float, int]:
    """The last of ``calls`` decodes of all payloads; the first is timed from the codec's import on."""
    as_installed()
    payloads = _payloads(directory)
    started = _cpu()
    from flowscope.diagnostics import Skips
    from flowscope.kafka import goflow2

    for _ in range(int(calls) - 1):
        goflow2.decode_payloads(payloads, Skips())
        started = _cpu()
    table = goflow2.decode_payloads(payloads, Skips())
    return _cpu() - started, table.num_rows


def _runtime(directory: str) -> ModuleType:
    out = Path(directory) / "pb"
    if not (out / "flow_pb2.py").exists():
        out.mkdir(exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTO.parent}", f"--python_out={out}", PROTO.name],
            check=True,
        )
    spec = importlib.util.spec_from_file_location("flow_pb2", out / "flow_pb2.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def peer_encode_step(directory: str, flows: str) -> tuple[float, int]:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from google.protobuf.internal.encoder import _VarintBytes

    from flowscope import addresses
    from flowscope.kafka import goflow2

    flow_pb2 = _runtime(directory)
    table = pq.read_table(Path(directory) / "flows.parquet").slice(0, int(flows))
    columns = {}
    for f in goflow2.FIELDS:
        column = table.column(f.column)
        if f.kind == "address":
            matrix = addresses.to_matrix(column)
            v4 = addresses.is_ipv4_matrix(matrix)
            columns[f.column] = [bytes(row[12:]) if four else bytes(row) for row, four in zip(matrix, v4, strict=True)]
        elif f.kind == "time":
            columns[f.column] = column.cast(pa.int64()).fill_null(0).to_pylist()
        elif f.kind == "enum":
            known = goflow2.FLOW_TYPES
            columns[f.column] = [known.index(v) if v in known else 0 for v in column.to_pylist()]
        else:
            columns[f.column] = column.fill_null(0).to_pylist()
    from flowscope.schema import column as catalogue

    names = {f.column: catalogue(f.column).goflow2.name for f in goflow2.FIELDS}
    rows = [dict(zip(names.values(), values, strict=True)) for values in zip(*(columns[c] for c in names), strict=True)]
    started = _cpu()
    out = []
    for row in rows:
        body = flow_pb2.FlowMessage(**row).SerializeToString()
        out.append(_VarintBytes(len(body)) + body)
    b"".join(out)
    return _cpu() - started, len(rows)


def peer_decode_step(directory: str, flows: str) -> tuple[float, int]:
    from google.protobuf.internal.decoder import _DecodeVarint

    flow_pb2 = _runtime(directory)
    data = np.load(Path(directory) / "messages.npy").tobytes()
    bodies, at = [], 0
    while at < len(data) and len(bodies) < int(flows):
        length, at = _DecodeVarint(data, at)
        bodies.append(data[at : at + length])
        at += length
    started = _cpu()
    for body in bodies:
        message = flow_pb2.FlowMessage()
        message.ParseFromString(body)
    return _cpu() - started, len(bodies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flows", type=int, default=1_000_000)
    parser.add_argument("--peer-flows", type=int, default=200_000)
    parser.add_argument("--per-message", type=int, default=256)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as directory:
        started = time.perf_counter()
        measure_in_subprocess("generate", "bench_kafka_codec", "generate_step", directory, str(args.flows),
                              str(args.per_message))  # fmt: skip
        print(f"generated {args.flows:,} flows in {time.perf_counter() - started:.1f} s")
        size = np.load(Path(directory) / "messages.npy", mmap_mode="r").shape[0]
        print(f"goflow2 messages: {size / args.flows:.1f} bytes per flow (length prefix included)")
        for step, title, peer_name in (("encode", "encode FlowMessages", "protobuf runtime encode"),
                                       ("decode", f"decode FlowMessages ({args.per_message} per payload)",
                                        "protobuf runtime parse")):  # fmt: skip
            ours = measure_in_subprocess(f"flowscope {step} (whole)", "bench_kafka_codec", f"flowscope_{step}_step",
                                         directory, "1")  # fmt: skip
            peer = measure_in_subprocess(peer_name, "bench_kafka_codec", f"peer_{step}_step", directory,
                                         str(args.peer_flows))  # fmt: skip
            print_comparison(title, "flows", ours, peer)
            steady = measure_in_subprocess(f"flowscope {step} (steady)", "bench_kafka_codec",
                                           f"flowscope_{step}_step", directory, "2")  # fmt: skip
            print(f"  {steady.name:<34} {steady.seconds:8.3f} s  {steady.rate:14,.0f} flows/s  "
                  f"(a second call in the process)")  # fmt: skip
        arrow_bytes = int((Path(directory) / "arrow-bytes").read_text())
        per_flow = arrow_bytes / args.flows
        print(f"\narrow format: {per_flow:.1f} bytes per flow (65,536 flows per message, zstd)")
        for step in ("encode", "decode"):
            m = measure_in_subprocess(f"arrow {step}", "bench_kafka_codec", f"arrow_{step}_step", directory)
            print(f"  {m.name:<34} {m.seconds:8.3f} s  {m.rate:14,.0f} flows/s  peak RSS {m.peak_rss_mib:8.1f} MiB")


if __name__ == "__main__":
    main()
