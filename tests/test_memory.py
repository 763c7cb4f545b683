"""The memory policy's process-wide choices: Arrow's allocator for the collector, settled before pyarrow loads."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import flowscope

PROBE = "import sys; sys.argv = ['flowscope', *sys.argv[1:]]; import flowscope.cli, pyarrow; "
PROBE += "print(pyarrow.default_memory_pool().backend_name)"


def _pool(*args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    env["PYTHONPATH"] = os.path.dirname(os.path.dirname(flowscope.__file__))  # this source tree
    result = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, env=env, check=True)
    return result.stdout.strip()


@pytest.mark.parametrize(("args", "system"), [(("--lake", "x", "collect"), True), (("read", "x"), False)])
def test_the_collector_takes_the_c_heap_for_arrow_from_the_start(args: tuple[str, ...], system: bool) -> None:
    assert (_pool(*args) == "system") is system
