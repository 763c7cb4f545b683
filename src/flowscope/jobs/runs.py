"""One worker's share: a contiguous run of capture files metered from an empty flow cache.

``meter_run`` returns a ``Partial``: the flows that are final whatever came before the run
(``flows``, a flow-schema table) and a ``RunState``, the small remainder the stitcher
(``flowscope.jobs.stitch``) needs to turn the runs' results into the one-machine result. Both
travel as Arrow: ``RunState.to_arrow()`` is one table of Arrow IPC blobs, so a Spark executor can
return it from ``mapInArrow`` and the driver can rebuild it with ``RunState.from_arrow``.

Which flows are final. The meter's timeouts are decided per key, by packets: a packet starts a
new flow ``idle`` or more after its key's last packet, or ``active`` or more after its flow's first
(``capture/meter.py``). A run started from an empty cache therefore meters every key exactly as
one machine would, except the keys whose flow was still open when the run began: their first
packets may belong to that open flow, and its earlier start moves their ``active`` splits. Such a
key's first packet comes within ``idle`` of the run's first packet (else the open flow has
timed out; ``REORDER_NS`` more where times go back at the boundary), and the difference ends
at the key's first ``idle`` gap, after which both meter from scratch. So the run sets aside,
as *head*, the keys with a packet in its first ``idle`` seconds: their flows up to their first
idle gap (``head``; in cache columns, with the flow-schema rows
already converted in ``head_table``) and their packet rows over the same span (``rows``, with the
batch each came in, and the clock after every batch in ``clocks``), from which the stitcher
re-meters the few keys whose carried flow crosses its ``active`` limit inside them. Flows still
open at the end go to ``tail`` (their continuation is the next run's head). Everything else is
``flows``.

Cost: the head is what a run holds beyond one machine's work. Over runs longer than ``idle``
it is the keys of the first ``idle`` seconds; over shorter runs it is every key of the run, and
``rows`` then holds every packet of keys seen twice or more (120 bytes each): the stitcher
needs per-packet times only where a carried flow's active limit falls inside a fresh flow.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from flowscope.capture.files import iter_packet_batches
from flowscope.capture.meter import _COLUMNS, NS_PER_S, FlowMeter, FlowRows, _column, _running_max
from flowscope.capture.options import MeterOptions
from flowscope.capture.pcap import FILE_HEADER, Span
from flowscope.capture.pcapng import InterfaceStatistics
from flowscope.diagnostics import Skips
from flowscope.jobs.keys import HashSet, KeyIndex, key_order

GATHER_FLOWS = 1 << 13
NO_CLOCK = -1
"""``clocks`` value of a batch before any IP packet (the meter's clock is still unset)."""
NEVER = np.iinfo(np.int64).max
REORDER_NS = 1_000_000_000
"""How far packet times may go back where a run begins (packets of several NIC queues interleave): the head
window is ``idle`` plus this long, so a key continuing a flow whose last packet came that much later is in it."""


@dataclass
class RunState:
    """What the stitcher needs of one run besides its final flows (see the module docstring)."""

    index: int
    """The run's place in the stream (runs are stitched in this order)."""
    head: FlowRows
    head_open: np.ndarray
    """Which head flows were still open at the end of the run."""
    head_table: pa.Table
    """``head`` as flow-schema rows, same order."""
    head_gap: np.ndarray
    """Per head flow: when its key's first idle gap in the run ends (``NEVER``: none; the head reaches the end)."""
    tail: FlowRows
    tail_table: pa.Table
    rows: FlowRows
    rows_batch: np.ndarray
    clocks: np.ndarray
    """The meter's clock after each batch (``NO_CLOCK`` before the first IP packet)."""
    sizes: np.ndarray
    """Flows in the cache after each batch (the stitcher's check of the ``max_flows`` bound)."""
    fragments: dict[str, np.ndarray]
    """First fragments still remembered at the end (``FlowMeter.state``'s ``fragments.*``)."""
    start_ns: int | None = None
    """Time of the run's first IP packet."""
    in_order: bool = True
    """No packet of the run is older than one before it."""
    head_complete: bool = True
    """No packet older than the head window came after the window had closed."""
    earliest_unmatched_ns: int | None = None
    packets: int = 0
    early_expired: int = 0
    unmatched_fragments: int = 0
    skips: Skips = field(default_factory=lambda: Skips(unit="packets"))
    statistics: list[dict[str, dict[str, int]]] = field(default_factory=list)
    """Per file, in order: its pcapng interface statistics (``InterfaceStatistics.latest``: the capturer's drops)."""

    @property
    def clock_ns(self) -> int | None:
        """The clock at the end of the run."""
        clock = int(self.clocks.max()) if self.clocks.size else NO_CLOCK
        return None if clock == NO_CLOCK else clock

    def parts(self) -> dict[str, pa.Table]:
        """The state as named Arrow tables (numeric columns zero-copy; booleans as bytes)."""
        meta = {
            "index": self.index,
            "start_ns": self.start_ns,
            "in_order": self.in_order,
            "head_complete": self.head_complete,
            "earliest_unmatched_ns": self.earliest_unmatched_ns,
            "packets": self.packets,
            "early_expired": self.early_expired,
            "unmatched_fragments": self.unmatched_fragments,
            "skips": {"unit": self.skips.unit, "counts": dict(self.skips.counts), "examples": self.skips.examples},
            "statistics": self.statistics,
        }
        return {
            "meta": pa.table({"json": pa.array([json.dumps(meta)], pa.string())}),
            "head": _arrays_table({**self.head.columns, "open": self.head_open, "gap": self.head_gap}),
            "head_table": self.head_table,
            "tail": _arrays_table(self.tail.columns),
            "tail_table": self.tail_table,
            "rows": _arrays_table({**self.rows.columns, "batch": self.rows_batch}),
            "timeline": _arrays_table({"clock": self.clocks, "size": self.sizes}),
            "fragments": _arrays_table(self.fragments),
        }

    @classmethod
    def from_parts(cls, parts: dict[str, pa.Table]) -> RunState:
        meta = json.loads(parts["meta"].column("json")[0].as_py())
        skips = Skips(unit=meta["skips"]["unit"])
        skips.counts.update(meta["skips"]["counts"])
        skips.examples.update(meta["skips"]["examples"])
        head, rows, timeline = _arrays(parts["head"]), _arrays(parts["rows"]), _arrays(parts["timeline"])
        return cls(
            index=meta["index"],
            head=_flow_rows(head),
            head_open=head["open"].astype(bool),
            head_table=parts["head_table"],
            head_gap=head["gap"],
            tail=_flow_rows(_arrays(parts["tail"])),
            tail_table=parts["tail_table"],
            rows=_flow_rows(rows),
            rows_batch=rows["batch"],
            clocks=timeline["clock"],
            sizes=timeline["size"],
            fragments=_arrays(parts["fragments"]),
            start_ns=meta["start_ns"],
            in_order=meta["in_order"],
            head_complete=meta["head_complete"],
            earliest_unmatched_ns=meta["earliest_unmatched_ns"],
            packets=meta["packets"],
            early_expired=meta["early_expired"],
            unmatched_fragments=meta["unmatched_fragments"],
            skips=skips,
            statistics=meta["statistics"],
        )

    def to_arrow(self) -> pa.Table:
        """The state as one table (columns ``run``, ``part``, ``data``: an Arrow IPC stream per part)."""
        parts = self.parts()
        blobs = [ipc_buffer(table) for table in parts.values()]
        offsets = np.cumsum([0] + [blob.size for blob in blobs], dtype=np.int64)
        data = pa.Array.from_buffers(
            pa.large_binary(), len(blobs), [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(blobs))]
        )
        return pa.table(
            {"run": pa.array([self.index] * len(parts), pa.int32()), "part": pa.array(list(parts)), "data": data}
        )

    @classmethod
    def from_arrow(cls, table: pa.Table) -> RunState:
        names, blobs = table.column("part").to_pylist(), table.column("data")
        return cls.from_parts({name: read_ipc(blob.as_buffer()) for name, blob in zip(names, blobs, strict=True)})


@dataclass
class Partial:
    """A run's result: ``flows`` are final; ``state`` goes to the stitcher."""

    flows: list[pa.Table]
    state: RunState

    @property
    def rows(self) -> int:
        return sum(table.num_rows for table in self.flows)


def meter_run(
    paths: Sequence[Path | Span],
    options: MeterOptions,
    *,
    index: int = 0,
    mapped: Collection[Path] = (),
    progress: Callable[[int], None] | None = None,
    emit: Callable[[pa.Table], None] | None = None,
    opens_stream: bool = False,
) -> Partial:
    """Meter ``paths`` (consecutive files of one rotation stream, in order) from an empty flow cache.

    An item may be a ``Span`` of a classic pcap file instead (a file metered in several runs, ``jobs/split.py``):
    its records are read from ``span.start`` on, and the reader leaves in the span where its walk ended.

    Files in ``mapped`` are memory-mapped (only those nobody truncates: see ``capture.chunks.MappedChunks``).
    ``progress``, if given, is called with the bytes of each file once it is metered; ``emit``, if given,
    with each table of final flows as soon as it is finished (``Partial.flows`` then stays empty).
    ``opens_stream``: no flow is open before this run (the stitcher's carry is empty), so every flow it
    finishes is final and it keeps no head: it costs what one meter costs (a head cost run 0 of
    ``bench_workers.py``'s realistic input 0.2-0.4 CPU s over the 0.9 s of its metering).
    """
    skips = Skips(unit="packets")
    meter = FlowMeter(options, skips)
    idle_ns = int(options.idle * NS_PER_S)
    head = _HeadWindow(idle_ns, kept=not opens_stream)
    pending: list[FlowRows] = []  # finished flows not sorted into head and final yet
    final: list[pa.Table] = []
    deliver = emit or final.append
    gathered: list[FlowRows] = []
    clocks: list[int] = []
    sizes: list[int] = []
    statistics: list[dict[str, dict[str, int]]] = []
    for item in paths:
        path, span = (item.path, item) if isinstance(item, Span) else (item, None)
        found = InterfaceStatistics()
        batches = iter_packet_batches(
            [path], tunnels=options.tunnels, skips=skips, mapped=path in mapped, statistics=found, span=span
        )
        reported = span.start if span and span.start > FILE_HEADER else 0  # the first span counts the header
        for batch in batches:
            if span is not None and progress is not None:  # one file in spans: progress as its records are read
                progress(span.end - reported)
                reported = span.end
            rows = meter.packet_rows(batch)
            head.see(rows, len(clocks))
            finished = meter.add_packet_rows(rows)
            clocks.append(NO_CLOCK if meter.clock_ns is None else meter.clock_ns)
            sizes.append(len(meter.cache))
            if not len(finished):
                continue
            pending.append(finished)
            if head.closed:  # the head keys are known: sort the finished flows out
                head.sort_out(pending, gathered)
                pending = []
            if sum(map(len, gathered)) >= GATHER_FLOWS:
                deliver(meter.table(FlowRows.concat(gathered)))
                gathered = []
        statistics.append(found.latest)
        if progress is not None:
            # a span that ended without landing on the next one ended the file (its end, a cut or corrupt record)
            progress(span.end - reported if span and span.landed else path.stat().st_size - reported)
    head.sort_out(pending, gathered)
    open_flows = meter.cache.rows().take(np.ones(len(meter.cache), bool))
    open_head = head.keys.contains(open_flows["key"])
    candidates = FlowRows.concat([*head.flows, open_flows.take(open_head)])
    is_open = np.zeros(len(candidates), bool)
    is_open[len(candidates) - int(open_head.sum()) :] = True
    in_segment, gaps = first_segments(candidates, idle_ns)
    later = candidates.take(~in_segment)
    later_open = is_open[~in_segment]
    gathered.append(later.take(~later_open))
    if sum(map(len, gathered)):
        deliver(meter.table(FlowRows.concat(gathered)))
    head_flows, head_open, head_gap = candidates.take(in_segment), is_open[in_segment], gaps[in_segment]
    tail = FlowRows.concat([open_flows.take(~open_head), later.take(later_open)])
    kept = FlowRows.concat(head.rows)
    kept_batch = np.concatenate(head.rows_batch) if head.rows_batch else np.zeros(0, np.int32)
    head.rows, head.rows_batch = [], []  # one copy of the packet rows at a time (the largest part of a head)
    # trim the kept rows at their key's first idle gap: only keys that have one need a lookup
    gapped = head_gap != NEVER
    ended = KeyIndex(head_flows.take(gapped))
    at = ended.find(kept)
    keep = at < 0
    if len(ended):
        keep |= kept["first_ns"] < head_gap[gapped][ended.first[np.maximum(at, 0)]]
    fragments = {
        name.split(".", 1)[1]: values for name, values in meter.state().items() if name.startswith("fragments.")
    }
    state = RunState(
        index=index,
        head=head_flows,
        head_open=head_open,
        head_table=meter.table(head_flows),
        head_gap=head_gap,
        tail=tail,
        tail_table=meter.table(tail),
        rows=kept.take(keep),
        rows_batch=kept_batch[keep],
        clocks=np.array(clocks, np.int64),
        sizes=np.array(sizes, np.int64),
        fragments=fragments,
        start_ns=head.start_ns,
        in_order=head.in_order,
        head_complete=head.complete,
        earliest_unmatched_ns=meter.earliest_unmatched_ns,
        packets=meter.packets,
        early_expired=meter.early_expired,
        unmatched_fragments=meter.unmatched_fragments,
        skips=skips,
        statistics=statistics,
    )
    return Partial(final, state)


class _HeadWindow:
    """The keys with a packet in the run's first ``idle`` seconds, and their packet rows as they come."""

    def __init__(self, idle_ns: int, *, kept: bool = True) -> None:
        """``kept`` False: no head (the window is closed before the first packet)."""
        self.idle_ns = idle_ns
        self.keys = HashSet()
        self.start_ns: int | None = None
        self.kept = kept
        self.closed = not kept
        self.in_order = True
        self.complete = True
        self.latest: int | None = None
        self.flows: list[FlowRows] = []
        self.rows: list[FlowRows] = []
        self.rows_batch: list[np.ndarray] = []

    def sort_out(self, finished: list[FlowRows], final: list[FlowRows]) -> None:
        """Finished flows to the head (their key is a head key) or to ``final``."""
        if not self.kept:
            final.extend(finished)
            return
        for flows in finished:
            is_head = self.keys.contains(flows["key"])
            if is_head.any():
                self.flows.append(flows.take(is_head))
            final.append(flows.take(~is_head))

    def see(self, rows: FlowRows, batch: int) -> None:
        if not len(rows):
            return
        times = rows["first_ns"]
        if self.start_ns is None:
            self.start_ns = int(times.min())
        if self.in_order:
            self.in_order = bool((times[1:] >= times[:-1]).all()) and (
                self.latest is None or int(times[0]) >= self.latest
            )
        latest = int(times.max())
        self.latest = latest if self.latest is None else max(self.latest, latest)
        if not self.kept:
            return
        window_end = self.start_ns + self.idle_ns + REORDER_NS
        early = times < window_end
        mine = early  # rows in the window are head rows; the others are if their key is a head key
        if early.any():
            if self.closed:
                self.complete = False  # a key may have gone final before this packet made it a head key
            self.keys.add(rows["key"][early])
            if not early.all():
                late = np.flatnonzero(~early)
                mine = early.copy()
                mine[late] = self.keys.contains(rows["key"][late])
        else:
            if not self.closed and int(times.min()) >= window_end:
                self.closed = True
            mine = self.keys.contains(rows["key"])
        if mine.any():
            self.rows.append(rows.take(mine))
            self.rows_batch.append(np.full(int(mine.sum()), batch, np.int32))


def first_segments(flows: FlowRows, idle_ns: int) -> tuple[np.ndarray, np.ndarray]:
    """Which flows come before their key's first idle gap, and per flow when that gap ends.

    A gap is where a flow starts ``idle_ns`` or more after every earlier flow of its key ended
    (``NEVER`` where a key has none).
    """
    n = len(flows)
    order, new_key = key_order(flows, flows["first_ns"])
    first, last = flows["first_ns"][order], flows["last_ns"][order]
    seen = _running_max(last, new_key)
    gap = np.zeros(n, bool)
    gap[1:] = ~new_key[1:] & (first[1:] - seen[:-1] >= idle_ns)
    run = np.cumsum(new_key) - 1
    starts = np.flatnonzero(new_key)
    gaps_so_far = np.cumsum(gap)
    in_segment = np.empty(n, bool)
    in_segment[order] = gaps_so_far == gaps_so_far[starts][run]
    boundaries = np.full(starts.size, NEVER, np.int64)
    np.minimum.at(boundaries, run[gap], first[gap])
    per_flow = np.empty(n, np.int64)
    per_flow[order] = boundaries[run]
    return in_segment, per_flow


def _arrays_table(arrays: dict[str, np.ndarray]) -> pa.Table:
    """Numeric numpy columns as an Arrow table without copies (booleans travel as bytes)."""
    return pa.table(
        {
            name: _column(values.view(np.uint8) if values.dtype == np.bool_ else values)
            for name, values in arrays.items()
        }
    )


def _arrays(table: pa.Table) -> dict[str, np.ndarray]:
    return {name: table.column(name).to_numpy() for name in table.column_names}


def _flow_rows(arrays: dict[str, np.ndarray]) -> FlowRows:
    return FlowRows(
        {name: arrays[name].view(dtype) if dtype == np.bool_ else arrays[name] for name, dtype, _ in _COLUMNS}
    )


def ipc_buffer(table: pa.Table) -> pa.Buffer:
    """``table`` as one Arrow IPC stream."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def read_ipc(buffer: pa.Buffer | bytes) -> pa.Table:
    """The table of one Arrow IPC stream (zero-copy on ``buffer``)."""
    return pa.ipc.open_stream(buffer).read_all()
