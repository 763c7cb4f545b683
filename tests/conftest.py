"""Shared fixtures: real test data from ../shared and real tools, skipped locally, required under CI."""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterator
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


@pytest.fixture(autouse=True)
def _dev_null_stays_a_device() -> Iterator[None]:
    """Fail the test during which /dev/null stopped being a device (twice this week something running as root
    replaced it by a regular file, and PostgreSQL's initdb failed tests much later); put it back so that the
    tests after it run on a sound machine. A test on its own never repairs anything else."""
    yield
    if not stat.S_ISCHR(os.stat("/dev/null").st_mode):
        os.remove("/dev/null")
        os.mknod("/dev/null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        os.chmod("/dev/null", 0o666)
        pytest.fail("/dev/null was replaced by a regular file during this test (recreated)")
