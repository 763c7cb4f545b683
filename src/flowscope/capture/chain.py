"""Finding every record of a chain-linked file (each header gives the length to the next) with numpy.

pcap records and pcapng blocks can only be found by following lengths from the start, one record
after another. Instead of one Python step per record, the buffer is cut into lanes of about
LANE_RECORDS records; each lane start is moved to the first position that looks like a record (by
the format's plausibility test), and all lanes are then walked together, one numpy step per record
*within* a lane. A lane counts only if the walk of the lane before it lands exactly on its start,
so a false guess never produces a false record: it is re-walked from where the true chain entered it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

LANE_RECORDS = 128  # records per lane: fewer means more lanes to guess, more means more walk steps
MIN_LANE_BYTES = 4096
MAX_LANE_BYTES = 4 << 20
SEARCH_RECORDS = 4  # a lane start is looked for within this many mean record lengths past its boundary
DEFAULT_MEAN_RECORD = 128  # bytes per record assumed before any was seen

Lengths = Callable[[np.ndarray], np.ndarray]
Candidates = Callable[[int, int, int, int], np.ndarray]
"""``candidates(first, step, count, window)``: sorted positions that look like record starts within the
windows ``[first + i * step, first + i * step + window)`` for ``i < count``."""


@dataclass
class Chain:
    offsets: np.ndarray  # int64 start of every whole record, in file order
    end: int  # where the first incomplete (or corrupt) record starts; len(buffer) when all were whole
    corrupt: bool  # the chain stopped at a record whose length is impossible

    def mean_record(self, start: int) -> float:
        """Mean record length found (a hint for the next buffer's lanes)."""
        count = self.offsets.shape[0]
        return (self.end - start) / count if count else DEFAULT_MEAN_RECORD


def walk(
    size: int,
    header: int,
    lengths: Lengths,
    candidates: Candidates,
    start: int = 0,
    mean_record: float = DEFAULT_MEAN_RECORD,
) -> Chain:
    """All whole records of a buffer of ``size`` bytes whose first record starts at ``start``.

    ``lengths(pos)`` gives each record's total length (<= 0 when impossible) for positions with at
    least ``header`` bytes left; ``candidates`` proposes lane starts (see ``Candidates``); lanes are sized
    from ``mean_record`` so each holds about LANE_RECORDS records.
    """
    starts = _lane_starts(size, candidates, start, mean_record)
    limits = np.append(starts[1:], size)
    found, ends, status = _lockstep(size, header, lengths, starts, limits)
    kept: list[np.ndarray] = []
    expected = start
    for lane in range(starts.shape[0]):
        if expected >= limits[lane]:
            continue  # the true chain jumped over this lane (a record longer than the lane)
        if starts[lane] != expected:  # a false guess: walk this lane again from the true position
            found_again, ends_again, status_again = _lockstep(
                size, header, lengths, np.array([expected]), limits[lane : lane + 1]
            )
            lane_records, lane_end, lane_status = found_again[0], int(ends_again[0]), int(status_again[0])
        else:
            lane_records, lane_end, lane_status = found[lane], int(ends[lane]), int(status[lane])
        kept.append(lane_records)
        expected = lane_end
        if lane_status != _REACHED_LIMIT:
            return Chain(_join(kept), expected, lane_status == _CORRUPT)
    return Chain(_join(kept), expected, False)


_REACHED_LIMIT, _INCOMPLETE, _CORRUPT = 0, 1, 2


def _join(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def window_positions(hits: np.ndarray, first: int, step: int) -> np.ndarray:
    """Buffer positions of the True entries of a (lanes, window) test over the search windows, sorted.

    ``flatnonzero`` on the flattened test: ``nonzero`` on the 2-D array is about 20x slower.
    """
    lane, offset = np.divmod(np.flatnonzero(hits), hits.shape[1])
    return first + lane * step + offset


def _lane_starts(size: int, candidates: Candidates, start: int, mean_record: float) -> np.ndarray:
    """Lane 0 starts at ``start``; every later lane at the first candidate after its boundary."""
    lane_bytes = int(min(max(LANE_RECORDS * mean_record, MIN_LANE_BYTES), MAX_LANE_BYTES))
    count = (size - start) // lane_bytes
    if count < 2:
        return np.array([start], np.int64)
    window = int(min(max(SEARCH_RECORDS * mean_record, 256), lane_bytes))
    found = candidates(start + lane_bytes, lane_bytes, count - 1, window)
    lane = (found - start) // lane_bytes
    first = np.unique(lane, return_index=True)[1]
    return np.concatenate([[start], found[first]]).astype(np.int64)


def _lockstep(
    size: int, header: int, lengths: Lengths, starts: np.ndarray, limits: np.ndarray
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Walk every lane from its start until it reaches its limit, an incomplete record or a corrupt one.

    Each step is one length read and one addition for all lanes: lanes that are done keep walking
    (clamped to the buffer) rather than being filtered out, which costs far less than the bookkeeping.
    Where each lane stopped, and why, is worked out once the slowest lane is done.
    """
    last = size - header  # the last position with a whole header
    if last < 0:  # not even one header: every lane stops where it starts (and nothing may be read)
        return [np.zeros(0, np.int64)] * starts.shape[0], starts.copy(), np.full(starts.shape[0], _INCOMPLETE)
    pos = starts
    trail = [pos]
    while True:
        step = lengths(np.minimum(pos, last))
        pos = pos + np.maximum(step, 0)  # a corrupt length leaves its lane in place
        trail.append(pos)
        if ((pos >= limits) | (step <= 0)).all():
            break
    visited = np.stack(trail)
    here, following = visited[:-1], visited[1:]
    has_header = here <= last
    corrupt = has_header & (following == here)
    whole = has_header & ~corrupt & (following <= size)
    stop = np.argmin(whole & (following < limits), axis=0)  # the first step that does not go on
    lane = np.arange(starts.shape[0])
    stopped_whole = whole[stop, lane]
    ends = np.where(stopped_whole, following[stop, lane], here[stop, lane])
    status = np.where(stopped_whole, _REACHED_LIMIT, np.where(corrupt[stop, lane], _CORRUPT, _INCOMPLETE))
    counts = stop + stopped_whole
    positions = here.T[np.arange(here.shape[0]) < counts[:, None]]  # lane by lane: file order
    bounds = np.concatenate([[0], np.cumsum(counts)])
    return [positions[bounds[i] : bounds[i + 1]] for i in range(starts.shape[0])], ends, status
