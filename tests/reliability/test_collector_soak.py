"""The collector under a burst and a steady load (issue 16), short: every datagram accounted for (sent = read +
kernel drops; sent flows = stored + IPFIX sequence gap), SIGTERM flushes everything and exits 0, and the
process tree's RSS stays below its idle RSS + the receive queue + a margin. The recorded runs (60 s burst,
10 min steady) are in docs/RELIABILITY.md; ``benchmarks/soak_collect.py`` runs them."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import soak_collect

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("kind", "rate", "seconds"),
    [("burst", soak_collect.BURST_RATE, 20.0), ("steady", soak_collect.STEADY_RATE, 30.0)],
)
def test_every_datagram_is_accounted_for(tmp_path: Path, kind: str, rate: float, seconds: float) -> None:
    result = soak_collect.run(kind, rate, seconds, tmp_path, queue_mib=16)
    print("\n" + result.report())
    assert result.sent_datagrams > 0 and result.stored > 0
    assert not result.problems(), result.report()
