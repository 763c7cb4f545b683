"""Lakes for the command-line tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from tests.helpers import HOUR_NS, flows

from flowscope.cli import main
from flowscope.lake import LakeWriter


@pytest.fixture
def small_lake(lake_dir: Path) -> Path:
    """240 flows over a day (``bytes`` = 0..239)."""
    with LakeWriter(lake_dir) as writer:
        writer.write(flows(240, spacing_ns=HOUR_NS // 10))
    return lake_dir


@pytest.fixture(scope="session")
def demo_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``flowscope demo --flows 20000 --packets 2000``: thousands of distinct pairs for long reports."""
    lake = tmp_path_factory.mktemp("demo") / "lake"
    result = CliRunner().invoke(main, ["--lake", str(lake), "-q", "demo", "--flows", "20000", "--packets", "2000"])
    assert result.exit_code == 0, result.output
    return lake
