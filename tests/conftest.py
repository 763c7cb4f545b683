"""Shared fixtures: real test data from ../shared and real tools, skipped locally, required under CI."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_TESTDATA = ROOT.parent / "shared" / "testdata"
UNDER_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def skip_or_fail(reason: str) -> None:
    """Skip locally; under CI a missing prerequisite is a failure, not a silent skip."""
    if UNDER_CI:
        pytest.fail(f"required under CI: {reason}")
    pytest.skip(reason)


def shared_data(*parts: str) -> Path:
    """A path inside ../shared/testdata (third-party fixtures that are never copied into the repo)."""
    path = SHARED_TESTDATA.joinpath(*parts)
    if not path.exists():
        skip_or_fail(f"test data {path} not present (clone the project beside ../shared)")
    return path


def require_tool(name: str) -> str:
    """The path of an external binary (tshark, nfdump, softflowd, ...)."""
    found = shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/usr/bin") / name) if p.exists()), None
    )
    if found is None:
        skip_or_fail(f"{name} is not installed (scripts/system-deps.sh installs it)")
    return str(found)


@pytest.fixture
def lake_dir(tmp_path: Path) -> Path:
    return tmp_path / "lake"
