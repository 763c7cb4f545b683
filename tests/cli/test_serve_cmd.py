"""``flowscope serve`` on a port another process holds: one error line before any announcement."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from flowscope.cli import main


def test_a_port_in_use_is_one_error_line(small_lake: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = CliRunner().invoke(main, ["--lake", str(small_lake), "serve", "--listen", f"127.0.0.1:{port}"])
    assert result.exit_code == 2
    assert result.stderr == f"error: cannot listen on 127.0.0.1:{port}: address already in use\n"


@pytest.mark.parametrize(
    "args",
    [["--query-timeout", "-1"], ["--query-timeout", "0"], ["--max-rows", "0"], ["--ingest", "--max-ingest-mib", "-1"]],
)
def test_limits_that_cannot_be_are_usage_errors(small_lake: Path, args: list[str]) -> None:
    result = CliRunner().invoke(main, ["--lake", str(small_lake), "serve", "--listen", "127.0.0.1:1", *args])
    assert result.exit_code == 2 and "Invalid value" in result.stderr  # they served with the nonsense limit
