"""Stitching runs of capture files metered apart into exactly the flows one meter gives over all of them.

The API (stable: ``read --workers``, ``watch --workers`` and the Spark job use it):

- ``meter_run(paths, options, index=i)`` (executor side, ``jobs/runs.py``): meter run ``i``, a
  contiguous run of files of one rotation stream, from an empty cache. Returns a ``Partial``:
  ``flows`` (flow-schema tables that are final: write them anywhere) and ``state`` (a ``RunState``;
  ``state.to_arrow()`` / ``RunState.from_arrow(table)`` carry it through ``mapInArrow``).
- ``Stitcher(options, carry=None)`` (driver side): ``add(state)`` for runs 0, 1, 2, ... in order
  returns the further flow tables that are settled; ``finish()`` returns the flows still open at
  the end of the input (what one meter exports at the end). The final flows of every run plus
  everything ``add`` and ``finish`` returned are, flow for flow and column for column, what
  ``flowscope read`` of all the files gives (row order aside). ``carry`` continues from a saved
  meter (``Carry.of_meter``: ``watch``'s snapshot), and ``stitcher.carry`` is the state to save.
- ``NotStitchable`` (from ``add``): the runs cannot be stitched with certainty (reason in the
  message); meter the files in one process instead. Only inputs no rotation produces raise it
  (see the limits below), and the parallel front ends then do so, with a note.

The algorithm. The flows still open after run ``i - 1`` (the *carry*, exactly as one meter has
them) meet run ``i``'s head (its keys' flows up to their first idle gap, ``jobs/runs.py``). For
each carried flow C whose key has head flows, with F1 its key's first head flow:

1. F1 starts ``idle`` or more after C's last packet, or ``active`` or more after C's first: C is
   finished as it is and the head flows stand (one meter splits there too).
2. Otherwise, if F1 ends before C's ``active`` limit: F1 continues C, and is replaced by C + F1
   (sums added, flags or-ed, first-packet fields from C); later head flows stand, since F1's end
   is an idle gap or an active split that lies past C's limit as well.
3. Otherwise C's active limit falls inside F1 and moves the key's later splits until its next
   idle gap: the key's head flows are replaced by re-metering its head packet rows, batch by
   batch with the run's clock, from C.

Carried flows whose key has no head flows are finished if the run's last clock has timed them
out (their next packet, if any, comes too late), else carried on (a run shorter than ``idle``).
Open head flows and the run's tail become the new carry.

Cost. The driver's work is a join of the carry with run ``i``'s head plus re-metering the
packets of case-3 keys; for captures of steady traffic the carry is the flows of the last
``idle`` seconds and case 3 hits the few whose ``active`` limit falls in the next run's first
flows. What runs ship besides their final flows is their head (``jobs/runs.py``).

Limits (each raises ``NotStitchable`` rather than a wrong result):
- packet times that go back by more than ``REORDER_NS`` (1 s) where a run begins (less is stitched
  exactly: the head window is that much longer, and such keys are re-metered), or beyond the head
  window inside a run;
- the flow cache bound (``max_flows``) reached, or possibly reached once the carry is added:
  its early exports depend on every key (``FlowMeter._enforce_limit``);
- a later IP fragment whose first fragment may lie in the previous run.
With runs whose times go back inside a run (but not across), keys of case 2 are re-metered as
case 3 (the clock then decides exports, and it is replayed per batch).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from flowscope.capture.meter import _COLUMNS, _FIRST, _KEY, _SUMMED, NS_PER_S, FlowMeter, FlowRows
from flowscope.capture.options import MeterOptions
from flowscope.diagnostics import Skips
from flowscope.jobs.keys import KeyIndex
from flowscope.jobs.runs import NEVER, NO_CLOCK, REORDER_NS, Partial, RunState, meter_run

__all__ = ["Carry", "NotStitchable", "Partial", "RunState", "Stitcher", "meter_run"]

FRAGMENT_ARRAYS = {"keys": np.uint64, "src_port": np.uint16, "dst_port": np.uint16, "seen_ns": np.int64}


class NotStitchable(Exception):
    """These runs cannot be stitched into the one-meter result with certainty; meter them in one process."""


@dataclass
class Carry:
    """Flows open between runs (cache columns and their flow-schema rows), the clock and the fragment table."""

    rows: FlowRows
    table: pa.Table
    clock_ns: int | None
    fragments: dict[str, np.ndarray]

    @classmethod
    def empty(cls, meter: FlowMeter) -> Carry:
        rows = FlowRows.empty()
        return cls(rows, meter.table(rows), None, {name: np.zeros(0, dtype) for name, dtype in FRAGMENT_ARRAYS.items()})

    @classmethod
    def of_meter(cls, meter: FlowMeter) -> Carry:
        """The state of a meter (e.g. one restored from ``watch``'s snapshot)."""
        state = meter.state()
        rows = FlowRows({name: np.array(state[f"cache.{name}"]) for name, _, _ in _COLUMNS})
        clock = int(state["clock_ns"][0])
        fragments = {name: np.array(state[f"fragments.{name}"]) for name in FRAGMENT_ARRAYS}
        return cls(rows, meter.table(rows), None if clock < 0 else clock, fragments)

    def state(self) -> dict[str, np.ndarray]:
        """As ``FlowMeter.state()``: ``meter.restore(carry.state())`` continues from here."""
        arrays = {f"cache.{name}": values for name, values in self.rows.columns.items()}
        arrays["clock_ns"] = np.array([NO_CLOCK if self.clock_ns is None else self.clock_ns], np.int64)
        arrays.update({f"fragments.{name}": values for name, values in self.fragments.items()})
        return arrays


class Stitcher:
    """Turns the ``RunState``s of consecutive runs, in order, into the flows their final flows lack."""

    def __init__(self, options: MeterOptions, carry: Carry | None = None) -> None:
        self.options = options
        self._meter = FlowMeter(options)  # for its table conversion only
        self.carry = carry or Carry.empty(self._meter)
        self._idle_ns = int(options.idle * NS_PER_S)
        self._active_ns = int(options.active * NS_PER_S)
        self._fragment_ns = int(options.fragment_timeout * NS_PER_S)
        self.skips = Skips(unit="packets")
        self.packets = 0
        self.unmatched_fragments = 0
        self.joined = 0
        """Carried flows continued by a run's first flow of their key (case 2)."""
        self.remetered = 0
        """Keys re-metered from their packet rows (case 3)."""

    def add(self, state: RunState) -> list[pa.Table]:
        """Stitch the next run on; returns the flows now settled (carried flows that ended, head flows)."""
        self._check(state)
        self.packets += state.packets
        self.unmatched_fragments += state.unmatched_fragments
        self.skips.merge(state.skips)
        carry, head = self.carry, state.head
        heads = KeyIndex(head, head["first_ns"])
        at = heads.find(carry.rows)
        f1 = heads.first[np.maximum(at, 0)] if len(heads) else np.zeros(at.size, np.intp)
        c_first, c_last = carry.rows["first_ns"], carry.rows["last_ns"]
        f_first = head["first_ns"][f1] if len(head) else c_first
        f_last = head["last_ns"][f1] if len(head) else c_last
        joins = (at >= 0) & (f_first - c_last < self._idle_ns) & (f_first - c_first < self._active_ns)
        # C + F1 is one flow with C's first packet only if no packet of F1 is older than C's last (times may go
        # back a little where a run begins: then the meter's order decides, case 3)
        whole = joins & (f_last - c_first < self._active_ns) & (f_first >= c_last) & state.in_order
        again = joins & ~whole
        clocks = [clock for clock in (carry.clock_ns, state.clock_ns) if clock is not None]
        clock = max(clocks) if clocks else None
        # a carried key the run's head lacks may still continue in a later run while the clock allows it
        waiting = (at < 0) & ~self._timed_out(carry.rows, clock)
        settled = [_rows(carry.table, ~joins & ~waiting)]
        carried: list[tuple[FlowRows, pa.Table]] = [(carry.rows.take(waiting), _rows(carry.table, waiting))]
        replaced = np.zeros(len(head), bool)
        if whole.any():
            joined = np.flatnonzero(whole)
            firsts = f1[joined]
            flows = _continued(carry.rows.take(joined), head.take(firsts))
            replaced[firsts] = True
            self._split(flows, state.head_open[firsts], settled, carried)
            self.joined += int(joined.size)
        if again.any():
            chosen = np.flatnonzero(again)
            self._check_gaps(carry.rows.take(chosen), f_first[chosen], state, heads.first[at[chosen]])
            keys = KeyIndex(carry.rows.take(chosen))
            replaced |= keys.find(head) >= 0
            flows, still_open = self._remeter(carry, chosen, keys, state, heads)
            self._split(flows, still_open, settled, carried)
            self.remetered += int(chosen.size)
        standing = ~replaced
        settled.append(_rows(state.head_table, standing & ~state.head_open))
        open_head = standing & state.head_open
        carried.append((head.take(open_head), _rows(state.head_table, open_head)))
        carried.append((state.tail, state.tail_table))
        self.carry = Carry(
            FlowRows.concat([rows for rows, _ in carried]),
            pa.concat_tables([table for _, table in carried]),
            clock,
            _merged_fragments(carry.fragments, state.fragments, clock, self._fragment_ns),
        )
        return [table for table in settled if table.num_rows]

    def finish(self) -> list[pa.Table]:
        """The flows still open at the end of the input (one meter exports them at its end)."""
        carry, self.carry = self.carry, Carry.empty(self._meter)
        return [carry.table] if carry.table.num_rows else []

    def _timed_out(self, flows: FlowRows, clock: int | None) -> np.ndarray:
        """The flows one meter has exported by this clock (``FlowMeter._timed_out``)."""
        if clock is None:
            return np.zeros(len(flows), bool)
        return (clock - flows["last_ns"] >= self._idle_ns) | (clock - flows["first_ns"] >= self._active_ns)

    def _split(
        self, flows: FlowRows, still_open: np.ndarray, settled: list[pa.Table], carried: list[tuple[FlowRows, pa.Table]]
    ) -> None:
        table = self._meter.table(flows)
        settled.append(_rows(table, ~still_open))
        carried.append((flows.take(still_open), _rows(table, still_open)))

    def _remeter(
        self, carry: Carry, chosen: np.ndarray, keys: KeyIndex, state: RunState, heads: KeyIndex
    ) -> tuple[FlowRows, np.ndarray]:
        """Case 3: meter the chosen keys' head packet rows from their carried flows, replaying the run's clock.

        Returns the flows and which of them stay open: those the replay left in the cache, unless their key's
        head ended at an idle gap inside the run (its next flow is in the run's tail or final flows)."""
        meter = FlowMeter(self.options)
        cached = carry.rows.take(chosen)
        meter.cache.insert(cached.take(np.argsort(cached["key"], kind="stable")))
        meter.clock_ns = carry.clock_ns
        mine = keys.find(state.rows) >= 0
        rows, batches = state.rows.take(mine), state.rows_batch[mine]
        bounds = np.searchsorted(batches, np.arange(state.clocks.size + 1))
        finished = []
        for batch, clock in enumerate(state.clocks.tolist()):
            part = rows.slice(int(bounds[batch]), int(bounds[batch + 1]))
            finished.append(meter.add_packet_rows(part, None if clock == NO_CLOCK else clock))
        left = meter.cache.rows()
        reaching = state.head_gap[heads.first[heads.find(left)]] == NEVER
        flows = FlowRows.concat([*finished, left.take(np.ones(len(left), bool))])
        still_open = np.zeros(len(flows), bool)
        still_open[len(flows) - len(left) :] = reaching
        return flows, still_open

    def _check_gaps(self, carried: FlowRows, f_first: np.ndarray, state: RunState, firsts: np.ndarray) -> None:
        """The head ends at the key's first idle gap as the run saw it; a carried flow whose last packet is
        newer than the head's first (times going back at the boundary) may close that gap, and the rows
        after it are not in the head."""
        gap = state.head_gap[firsts]
        closed = (f_first < carried["last_ns"]) & (gap != NEVER) & (gap - carried["last_ns"] < self._idle_ns)
        if closed.any():
            raise NotStitchable(f"run {state.index}: packet times go back across an idle gap at its start")

    def _check(self, state: RunState) -> None:
        where = f"run {state.index}"
        if state.early_expired:
            raise NotStitchable(f"{where}: the flow cache limit ({self.options.max_flows:,} flows) was reached")
        carry = self.carry
        if not len(carry.rows) and not carry.fragments["keys"].size:
            return
        if carry.clock_ns is not None and state.start_ns is not None and state.start_ns < carry.clock_ns - REORDER_NS:
            raise NotStitchable(
                f"{where}: packet times go back by more than {REORDER_NS / NS_PER_S:g} s where it begins"
            )
        if not state.head_complete and len(carry.rows):
            raise NotStitchable(f"{where}: packet times go back by more than the idle timeout")
        ends = np.sort(np.minimum(carry.rows["last_ns"] + self._idle_ns, carry.rows["first_ns"] + self._active_ns))
        alive = ends.size - np.searchsorted(ends, state.clocks, side="right")
        if state.sizes.size and int((state.sizes + alive).max()) > self.options.max_flows:
            raise NotStitchable(
                f"{where}: the flow cache limit ({self.options.max_flows:,} flows) may have been reached"
            )
        seen = carry.fragments["seen_ns"]
        if state.earliest_unmatched_ns is not None and (seen > state.earliest_unmatched_ns - self._fragment_ns).any():
            raise NotStitchable(f"{where}: IP fragments whose first fragment may be in the run before")


def _rows(table: pa.Table, chosen: np.ndarray) -> pa.Table:
    """The rows of ``table`` where ``chosen`` is true, in order: a take of their indexes. ``Table.filter`` with
    the mask was most of the stitch, serial after the last worker: the six selections of bench_workers.py's
    hostile run 1 (316 k head flows, 311 k carried) took 0.85-1.14 s filtered, 0.65-0.78 s taken (cProfile)."""
    return table.take(np.flatnonzero(chosen))


def _continued(carried: FlowRows, first: FlowRows) -> FlowRows:
    """Each carried flow continued by the whole of the matching first flow (same key)."""
    columns = {name: carried[name] for name, _, _ in (*_KEY, *_FIRST)}
    for name, _, _ in _SUMMED:
        columns[name] = carried[name] + first[name]
    columns["last_ns"] = np.maximum(carried["last_ns"], first["last_ns"])
    columns["tcp_flags"] = carried["tcp_flags"] | first["tcp_flags"]
    return FlowRows(columns)


def _merged_fragments(
    before: dict[str, np.ndarray], run: dict[str, np.ndarray], clock_ns: int | None, timeout_ns: int
) -> dict[str, np.ndarray]:
    """One fragment table as one meter would hold it: the latest entry per key, none older than the timeout."""
    merged = {name: np.concatenate([before[name], run[name]]).astype(dtype) for name, dtype in FRAGMENT_ARRAYS.items()}
    order = np.lexsort((merged["seen_ns"], merged["keys"]))
    latest = np.ones(order.size, bool)
    latest[:-1] = merged["keys"][order][1:] != merged["keys"][order][:-1]
    keep = order[latest]
    if clock_ns is not None:
        keep = keep[merged["seen_ns"][keep] > clock_ns - timeout_ns]
    return {name: values[keep] for name, values in merged.items()}
