"""What a command costs before it works: the executable runs without pandas, which pyarrow would otherwise import
at its first conversion of values (0.25 s of start-up) when it is installed."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from flowscope.cli import _without_pandas

CSV = Path(__file__).parents[1] / "csv" / "data" / "unicauca11_example.csv"


@pytest.mark.skipif(importlib.util.find_spec("pandas") is None, reason="pandas is not installed: nothing to avoid")
def test_a_command_that_converts_values_does_not_import_pandas(tmp_path: Path) -> None:
    out = tmp_path / "o.csv"
    command = [sys.executable, "-X", "importtime", "-m", "flowscope", "-q", "read", str(CSV), "-o", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "pyarrow" in imported  # the refused attempts at "pandas" are listed too, but none of its modules
    assert not [name for name in imported if name.startswith("pandas.")]
    assert out.read_text().count("\n") > 1


def test_pandas_stays_importable_where_it_was_loaded_or_for_spark(monkeypatch: pytest.MonkeyPatch) -> None:
    finders = list(sys.meta_path)
    monkeypatch.setattr(sys, "meta_path", finders)
    _without_pandas(["spark", "meter", "dir"])
    assert sys.meta_path == finders
    monkeypatch.setitem(sys.modules, "pandas", sys.modules.get("pandas") or object())
    _without_pandas(["read", "x.csv"])
    assert sys.meta_path == finders
