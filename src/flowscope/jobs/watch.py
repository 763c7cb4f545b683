"""``watch --workers N``: the complete files found by one poll metered in N processes, continuing the watch's meter.

The watch's flow cache (restored from its snapshot in ``LAKE/.watch/``) is the stitcher's carry,
so flows open before the poll continue across the runs; the stitched end state becomes the
watch's cache again. The poll's flows are gathered before anything is written, then written,
made durable, and the files recorded together with the new cache snapshot in one state write
(``CaptureWatcher.commit``): every file is metered exactly once across restarts, as with one
process (a crash between the flush and the state write meters the poll's files again, where one
process would meter one file again).

Whatever the workers cannot do exactly is left to the one-process path, which then meters the
same files from the same cache: files that are not plain captures or gzip copies of metered
ones, an unreadable file (the one-process path records it as unreadable and goes on), and
inputs the stitcher refuses (``NotStitchable``, noted once per poll).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from flowscope.capture.files import is_capture
from flowscope.errors import FlowscopeError
from flowscope.jobs.pool import Workers, split_runs
from flowscope.jobs.stitch import Carry, NotStitchable
from flowscope.readers.registry import head_bytes

if TYPE_CHECKING:
    from flowscope.capture.watch import CaptureWatcher


def meter_together(watcher: CaptureWatcher, files: list[tuple[Path, str]]) -> bool:
    """Meter ``files`` (complete, in rotation order) in ``watcher.workers`` processes; False: use one process."""
    try:
        stats = [path.stat() for path, _ in files]
        if any(relative.endswith(".gz") or not is_capture(head_bytes(path, 64)) for path, relative in files):
            return False
    except OSError:
        return False
    paths = [path for path, _ in files]
    workers = Workers(
        split_runs(paths, [stat.st_size for stat in stats], watcher.workers),
        watcher.meter.settings,
        carry=Carry.of_meter(watcher.meter),
        end_of_input=False,
    )
    try:
        tables: list[pa.Table] = list(workers)
    except NotStitchable as exc:
        watcher.parallel_notes.append(f"--workers: {len(files)} file(s) metered in one process ({exc})")
        return False
    except FlowscopeError:  # an unreadable file: the one-process path records it and goes on
        return False
    stitcher = workers.stitcher
    meter = watcher.meter
    meter.restore(stitcher.carry.state())
    meter.packets += stitcher.packets
    meter.unmatched_fragments += stitcher.unmatched_fragments
    watcher.skips.merge(stitcher.skips)
    for per_interface in workers.statistics:
        watcher.count_drops(per_interface)
    for table in tables:
        watcher.write(table)
    watcher.commit([(relative, stat) for (_, relative), stat in zip(files, stats, strict=True)])
    watcher.files_metered += len(files)
    if watcher.on_flows is not None:
        flows = sum(table.num_rows for table in tables)
        watcher.on_flows(paths[-1], flows)
    return True
