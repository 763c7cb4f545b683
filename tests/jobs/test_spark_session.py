"""Without pyspark or Java, ``flowscope spark`` says in one line how to install them."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from click.testing import CliRunner

from flowscope.cli import main


def test_without_pyspark_one_line_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pyspark" else real(name, *a))
    result = CliRunner().invoke(main, ["spark", "meter", str(tmp_path)])
    assert result.exit_code == 2
    assert result.output.splitlines() == [
        "error: Spark jobs need pyspark, which is not installed: pip install 'flowscope[spark]' (pyspark) "
        "and Java 17 (Debian: apt-get install default-jre-headless)"
    ]


def test_without_java_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    result = CliRunner().invoke(main, ["spark", "meter", str(tmp_path)])
    if importlib.util.find_spec("pyspark") is None:
        pytest.skip("pyspark is not installed: the first line is about pyspark")
    assert result.exit_code == 2 and "needs a Java runtime" in result.output and len(result.output.splitlines()) == 1


def test_a_failed_task_is_one_line() -> None:
    from flowscope.jobs.spark_meter import task_error

    text = (
        "An exception was thrown from the Python worker. Please see the stack trace below.\n"
        'Traceback (most recent call last):\n  File "x.py", line 3, in f\n'
        "flowscope.errors.FlowscopeError: cannot read /data/cap-3.pcap: [Errno 2] No such file or directory\n"
        "\tat org.apache.spark.api.python.BasePythonRunner.handlePythonException(PythonRunner.scala:500)\n"
    )
    assert task_error(RuntimeError(text)) == "cannot read /data/cap-3.pcap: [Errno 2] No such file or directory"
    assert task_error(RuntimeError("Traceback:\nMemoryError: out\n\tat x")) == "MemoryError: out"
