"""Roll-ups kept current by the long-running writers themselves (collect, consume, watch, capture).

A thread beside the writer runs ``build.maintain`` every ``interval`` seconds while data has landed since
the roll-ups were last complete, computing only *settled* partitions: their hour (a day for ``flows_1h``)
is over and no raw file of theirs changed for ``settle`` seconds. So each partition is computed about once,
after its data stopped arriving, rather than once per flush (a collector flushing every 5 s would otherwise
re-read the current hour 720 times); a late flow only makes its partition stale until the next pass after
it settles, and ``top`` answers from the raw flows until then (``choose`` checks every partition it uses).

Roll-ups are derived data: a failed pass is logged and counted, never stops the writer, and the next pass
retries. The pass runs on the keeper's thread alone (``build.write_partition``: numpy and Arrow kernels, a batch of
flows at a time), leaving the other cores to receiving and decoding.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from flowscope.lake.layout import Lake

log = logging.getLogger(__name__)

INTERVAL_SECONDS = 60.0
SETTLE_SECONDS = 300.0
"""Longer than any writer's buffer age (the collector's --flush), so a partition is settled only once its
writers have moved on."""


class RollupKeeper:
    """Keeps ``lake``'s roll-ups current in a background thread while a writer calls ``landed``."""

    def __init__(
        self,
        lake: Lake,
        *,
        interval: float = INTERVAL_SECONDS,
        settle: float = SETTLE_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.lake = lake
        self.interval = interval
        self.settle = settle
        self.clock = clock
        self.passes = 0
        self.partitions = 0
        self.failures = 0
        self._dirty = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def landed(self) -> None:
        """Data was published: the roll-ups may be stale (cheap; the work happens on the keeper's thread)."""
        self._dirty.set()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="rollups", daemon=True)
            self._thread.start()

    def run_pass(self, settle: float | None = None) -> int:
        """One maintenance pass over the partitions settled for ``settle`` seconds (default: the keeper's);
        the number of partitions it left for later."""
        settle = self.settle if settle is None else settle
        settled_at = datetime.fromtimestamp(self.clock(), UTC) - timedelta(seconds=settle)
        from flowscope.transforms.rollups.build import maintain

        results = maintain(self.lake, settled_at=settled_at)
        self.passes += 1
        self.partitions += sum(len(result.updated) for result in results)
        return sum(result.deferred for result in results)

    def stop(self, *, final_pass: bool = True) -> None:
        """Stop the thread (after the pass under way, if any), then, when data landed since the last pass,
        compute the partitions whose time is over, whatever their files' age (this writer adds nothing
        more): a writer that stops (``watch --once``, a collector restart) leaves its finished hours current.
        An aborted writer skips that pass."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if final_pass and self._dirty.is_set():
            self._dirty.clear()
            self._guarded_pass(settle=0.0)

    def notes(self) -> list[str]:
        if not self.failures:
            return []
        return [f"roll-up maintenance failed {self.failures} time(s) (see the log; `flowscope rollup` redoes it)"]

    def _run(self) -> None:
        while not self._stopping.wait(self.interval):
            if self._dirty.is_set():
                self._dirty.clear()
                self._guarded_pass()

    def _guarded_pass(self, settle: float | None = None) -> None:
        try:
            deferred = self.run_pass(settle)
        except Exception as error:  # derived data: log, count, retry on the next pass
            self.failures += 1
            self._dirty.set()
            log.warning("roll-up maintenance of %s failed: %s", self.lake.root, error)
            return
        if deferred:
            self._dirty.set()  # partitions still filling: look again next time
