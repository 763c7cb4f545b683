"""Fixtures for the Kafka transport: the official protobuf runtime compiled from goflow2's flow.proto."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
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
