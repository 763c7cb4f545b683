"""One local[2] Spark session per test module (start ~5 s, ~1.4 GB), skipped without pyspark or Java, required in CI."""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from tests.conftest import skip_or_fail


def require_spark() -> None:
    if importlib.util.find_spec("pyspark") is None:
        skip_or_fail("pyspark is not installed (scripts/setup.sh test installs the spark extra)")
    if shutil.which("java") is None:
        skip_or_fail("Java is not installed (scripts/system-deps.sh installs default-jre-headless)")


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    """The session every Spark test of a module shares; the CLI run in-process finds it (getOrCreate)."""
    require_spark()
    from flowscope.jobs.spark_session import spark_session

    session = spark_session("flowscope tests", "local[2]")
    yield session
    session.stop()
