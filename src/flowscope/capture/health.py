"""The health record of a ``watch`` or ``capture`` run: what reached the lake and what the capturer lost.

It is the collector's record (``collect.health.Health``, kind ``capture``) with the capture-side
counters in ``captures`` (``capture.drops``), so ``flowscope exporters``, the web console and the
metrics show capture drops beside the collector's socket drops. One file per watched folder and
record kind (``LAKE/_collector/health-capture-ID.json``): the last run of each replaces its own.
"""

from __future__ import annotations

from pathlib import Path

from flowscope.capture.watch import CaptureWatcher
from flowscope.collect.health import Health, merge_snapshots


class CaptureHealth:
    def __init__(self, watcher: CaptureWatcher, run_id: str) -> None:
        self.watcher = watcher
        self.run_id = run_id
        self.name = f"capture-{watcher.store.identity}"
        self.health = Health()
        self.health.kind = "capture"

    def _update(self) -> Health:
        watcher, health = self.watcher, self.health
        health.captures = {
            f"{source} -> {watcher.directory}": drops.as_dict() for source, drops in sorted(watcher.drops.items())
        }
        health.rows_written[watcher.records] = watcher.rows_written
        health.skips = watcher.skips
        return health

    def save(self, lake_root: Path) -> Path:
        return self._update().save(lake_root, self.name, run_id=self.run_id)

    def merged(self) -> dict:
        """The snapshot as the metrics endpoint renders it (``metrics.render``)."""
        return merge_snapshots([self._update().snapshot()])
