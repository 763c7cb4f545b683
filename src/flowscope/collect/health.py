"""Loss and health per exporter: sequence gaps, decode errors by reason, socket drops.

Every decoder reports one message row per datagram (``MESSAGE_SCHEMA``; sFlow adds rows
for its per-source sample sequences). ``Health.observe`` turns a batch of them into
per-stream sequence accounting without a Python loop per row: rows are grouped by
stream, sequence numbers are unwrapped (32-bit, modular) within each group, and a
running maximum of "the next expected number" tells gaps (missing) from late arrivals.

How far a sequence number advances per message differs by protocol: NetFlow v5 counts
flow records, IPFIX data records, options data included (RFC 7011 section 3.1), NetFlow
v9 export packets (RFC 3954 section 5.1), sFlow datagrams and, per data source, samples.
Only flow records count as an exporter's flows.

The whole state is a JSON-able snapshot, written to ``LAKE/_collector/health-*.json``
(``save_health``, by the collector and by ``read --as-exports``) so ``flowscope exporters``
and the metrics endpoint of a multi-worker collector can read it. ``watch`` and ``capture`` write
the same record (kind ``capture``) with what the capturing side lost (``captures``: tcpdump's kernel
and interface drops, pcapng statistics; ``flowscope.capture.drops``) in place of socket drops.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flowscope import addresses
from flowscope.collect.datagrams import Decoded
from flowscope.collect.state import NetflowState
from flowscope.collect.templates import write_json_atomically
from flowscope.diagnostics import Skips

HEALTH_DIR = "_collector"
HEALTH_GLOB = "health-*.json"

# A jump backwards by more than this many steps, or forwards by more than JUMP_LIMIT, is an exporter
# restart (or a second exporter behind one address): a new sequence epoch, not loss.
REORDER_LIMIT = 1 << 16
JUMP_LIMIT = 1 << 24

IPFIX = 10
STREAM_NAMES = {0: "datagrams", 1: "flow_samples", 2: "counter_samples"}
_OFFSET = 1 << 40  # keeps unwrapped positions positive for the grouped running maximum


@dataclass
class StreamHealth:
    """Sequence accounting of one stream (exporter, protocol version, domain, stream kind, source)."""

    received: int = 0
    missing: int = 0
    """Sequence steps skipped when a message arrived (loss, unless they show up late)."""
    late: int = 0
    """Steps that arrived behind the highest one already seen (reordering or duplicates)."""
    resets: int = 0
    next_expected: int | None = None

    @property
    def lost(self) -> int:
        return max(0, self.missing - self.late)


@dataclass
class ExporterHealth:
    datagrams: int = 0
    flows: int = 0
    first_seen_ns: int = 0
    last_seen_ns: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    """Datagrams not (fully) decoded, per reason."""
    streams: dict[tuple[int, int, int, int], StreamHealth] = field(default_factory=dict)
    """(version, domain, stream kind, source) -> accounting."""


@dataclass
class ListenerHealth:
    """What the receive loop of one socket saw; ``kernel_drops`` is the socket's drop counter, ``spooled_*``
    what waited in the receive process's spool file (a backlog beyond ``--queue-memory``)."""

    address: str = ""
    protocol: str = ""
    receive_buffer: int = 0
    datagrams: int = 0
    bytes: int = 0
    kernel_drops: int = 0
    spooled_datagrams: int = 0
    spooled_bytes: int = 0


LISTENER_COUNTERS = ("datagrams", "bytes", "kernel_drops", "spooled_datagrams", "spooled_bytes")
"""The counters of ``ListenerHealth`` that workers' snapshots add up."""


def _steps(protocol: str, version: np.ndarray, stream: np.ndarray, records: np.ndarray) -> np.ndarray:
    """How far each message moves its sequence number."""
    per_records = (protocol == "netflow") & np.isin(version, (5, 10)) & (stream == 0)
    return np.where(per_records, records.astype(np.int64), 1)


def sequence_accounting(
    group: np.ndarray, sequence: np.ndarray, step: np.ndarray, expected: np.ndarray, known: np.ndarray
) -> dict[str, np.ndarray]:
    """Per-group missing/late/resets/next-expected for rows in arrival order.

    ``group`` numbers each row's stream 0..g-1; ``expected``/``known`` give, per group, the
    next sequence number carried over from earlier batches. Returns arrays indexed by group.
    """
    groups = expected.shape[0]
    # A carried-over expectation acts as a virtual first row of zero steps.
    carried = np.flatnonzero(known)
    all_group = np.concatenate([carried, group])
    all_seq = np.concatenate([expected[carried], sequence]).astype(np.int64)
    all_step = np.concatenate([np.zeros(carried.shape[0], np.int64), step])
    real = np.concatenate([np.zeros(carried.shape[0], bool), np.ones(group.shape[0], bool)])
    order = np.lexsort((np.arange(all_group.shape[0]), all_group))
    g, s, st, real = all_group[order], all_seq[order], all_step[order], real[order]

    first = np.ones(g.shape[0], bool)
    first[1:] = g[1:] != g[:-1]
    delta = np.zeros(g.shape[0], np.int64)
    delta[1:] = ((s[1:] - s[:-1] + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)  # signed 32-bit difference
    reset = ~first & ((delta < -REORDER_LIMIT) | (delta > JUMP_LIMIT))
    starts = first | reset
    segment = np.cumsum(starts) - 1
    delta[starts] = 0
    position = np.cumsum(delta)
    position -= position[np.flatnonzero(starts)][segment]  # relative to the segment's first row
    end = position + st
    # Running maximum of "next expected" within each segment, shifted to exclude the row itself.
    keyed = segment * (4 * _OFFSET) + end + _OFFSET
    running = np.maximum.accumulate(keyed) - segment * (4 * _OFFSET) - _OFFSET
    before = np.empty_like(running)
    before[1:] = running[:-1]
    gap = np.where(starts, 0, position - before)

    missing = np.bincount(g, weights=np.where(gap > 0, gap, 0), minlength=groups).astype(np.int64)
    late = np.bincount(g, weights=np.where((gap < 0) & real, st, 0), minlength=groups).astype(np.int64)
    resets = np.bincount(g, weights=reset, minlength=groups).astype(np.int64)
    last = np.zeros(groups, np.int64)
    last_rows = np.flatnonzero(np.append(g[1:] != g[:-1], True))
    segment_start_seq = s[np.flatnonzero(starts)][segment]
    last[g[last_rows]] = (segment_start_seq[last_rows] + running[last_rows]) & 0xFFFFFFFF
    return {"missing": missing, "late": late, "resets": resets, "next": last}


def _domain_keys(exporters: np.ndarray, domains: np.ndarray) -> np.ndarray:
    """(n, 20) rows: exporter address and observation domain (big-endian)."""
    keys = np.zeros((exporters.shape[0], 20), np.uint8)
    keys[:, :16] = exporters
    keys[:, 16:] = domains.astype(">u4").view(np.uint8).reshape(-1, 4)
    return keys


def _optional_column(messages: pa.Table, name: str, dtype: type) -> np.ndarray:
    """A column only some decoders emit (sFlow's sample streams); absent or null reads as 0."""
    if name not in messages.column_names:
        return np.zeros(messages.num_rows, dtype)
    return pc.fill_null(messages.column(name), 0).to_numpy().astype(dtype)


def group_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group equal byte rows: (index of one row per group, group number of every row).

    Rows are hashed to 64 bits first (sorting 64-bit integers is far cheaper than sorting byte rows);
    batches usually hold one exporter, which takes the shortcut.
    """
    n, width = rows.shape
    if n == 0 or (rows == rows[0]).all():
        return np.zeros(min(n, 1), np.int64), np.zeros(n, np.int64)
    padded = np.zeros((n, -(-width // 8) * 8), np.uint8)
    padded[:, :width] = rows
    digest = np.zeros(n, np.uint64)
    for word in padded.view(np.uint64).T:
        digest = (digest ^ word) * np.uint64(0x9E3779B97F4A7C15)
        digest ^= digest >> np.uint64(29)
    _, first, group = np.unique(digest, return_index=True, return_inverse=True)
    return first, group.reshape(-1)


class Health:
    """Health of everything one collector process received."""

    def __init__(self) -> None:
        self.started_ns = time.time_ns()
        self.exporters: dict[tuple[str, bytes], ExporterHealth] = {}
        self.listeners: dict[str, ListenerHealth] = {}
        self.skips = Skips(unit="items")
        self.rows_written: Counter[str] = Counter()
        self.templates = {"known": 0, "held_sets": 0}
        """NetFlow v9/IPFIX templates known, and data sets held until their template comes."""
        self.captures: dict[str, dict[str, object]] = {}
        """Capture-side loss per capturer (``CaptureDrops.as_dict``), for ``watch`` and ``capture``."""
        self.kind = "collector"
        self.sampling: Counter[tuple[bytes, str, int]] = Counter()
        """sFlow flows per (agent, "record", rate): a sample always carries its rate. NetFlow's are counted where
        the rates are resolved (``SamplingTable.applied``) and joined in by ``save_health``."""

    def observe(self, protocol: str, decoded: Decoded) -> None:
        """Account one decoded batch of a listener of ``protocol`` ("netflow" or "sflow")."""
        self.skips.merge(decoded.skips)
        messages = decoded.messages
        if messages.num_rows == 0:
            return
        stream = _optional_column(messages, "stream", np.uint8)
        source = _optional_column(messages, "source", np.uint64)
        exporter = addresses.to_matrix(messages.column("exporter"))
        version = messages.column("version").to_numpy(zero_copy_only=False)
        domain = messages.column("domain").to_numpy(zero_copy_only=False)
        sequence = messages.column("sequence").to_numpy(zero_copy_only=False)
        records = messages.column("records").to_numpy(zero_copy_only=False)
        flows = messages.column("flows").to_numpy(zero_copy_only=False)
        received = messages.column("received_ns").to_numpy(zero_copy_only=False)
        ok = pc.equal(messages.column("status"), "ok").to_numpy(zero_copy_only=False)

        self._count_datagrams(protocol, exporter, stream, flows, received, messages.column("status"), ok)
        rows = np.flatnonzero(ok)
        if rows.size == 0:
            return
        key = np.zeros((rows.size, 32), np.uint8)
        key[:, :16] = exporter[rows]
        key[:, 16:18] = version[rows].astype(">u2").view(np.uint8).reshape(-1, 2)
        key[:, 18:22] = domain[rows].astype(">u4").view(np.uint8).reshape(-1, 4)
        key[:, 22] = stream[rows]
        key[:, 23:31] = source[rows].astype(">u8").view(np.uint8).reshape(-1, 8)
        first, group = group_rows(key)
        states: list[StreamHealth] = []
        for row in first.tolist():
            raw = key[row].tobytes()
            owner = self._exporter(protocol, raw[:16])
            stream_key = (
                int.from_bytes(raw[16:18], "big"),
                int.from_bytes(raw[18:22], "big"),
                raw[22],
                int.from_bytes(raw[23:31], "big"),
            )
            states.append(owner.streams.setdefault(stream_key, StreamHealth()))
        known = np.array([s.next_expected is not None for s in states], bool)
        expected = np.array([s.next_expected or 0 for s in states], np.int64)
        steps = _steps(protocol, version[rows], stream[rows], records[rows])
        result = sequence_accounting(group, sequence[rows].astype(np.int64), steps, expected, known)
        received_per_group = np.bincount(group, minlength=len(states))
        for index, state in enumerate(states):
            state.received += int(received_per_group[index])
            state.missing += int(result["missing"][index])
            state.late += int(result["late"][index])
            state.resets += int(result["resets"][index])
            state.next_expected = int(result["next"][index])
        if protocol == "netflow":
            self._credit_released_records(decoded.flows, messages, ok & (stream == 0) & (version == IPFIX))
        else:
            self._count_sample_rates(decoded.flows)

    def _count_sample_rates(self, flows: pa.Table) -> None:
        """sFlow flows per (agent, rate), one small loop per distinct pair."""
        if not flows.num_rows:
            return
        agents = addresses.to_matrix(flows.column("sampler_address"))
        rates = pc.fill_null(flows.column("sampling_rate"), 0).to_numpy().astype(np.uint64)
        keys = np.zeros((flows.num_rows, 24), np.uint8)
        keys[:, :16] = agents
        keys[:, 16:] = rates.astype(">u8").view(np.uint8).reshape(-1, 8)
        first, group = group_rows(keys)
        for row, count in zip(first.tolist(), np.bincount(group).tolist(), strict=True):
            self.sampling[(agents[row].tobytes(), "record", int(rates[row]))] += count

    def _credit_released_records(self, flows: pa.Table, messages: pa.Table, counted: np.ndarray) -> None:
        """IPFIX data held until its template came was decoded now, but its records were counted in no
        message when it arrived (unknown without the template), so the sequence showed a gap there.
        Flows of a domain beyond what this batch's messages announced are those records: credit them as late.
        """
        ipfix = pc.equal(flows.column("type"), "ipfix").to_numpy(zero_copy_only=False)
        if not ipfix.any():
            return
        flow_keys = _domain_keys(
            addresses.to_matrix(flows.column("sampler_address").filter(pa.array(ipfix))),
            pc.fill_null(flows.column("observation_domain_id"), 0).to_numpy()[ipfix],
        )
        rows = np.flatnonzero(counted)
        message_keys = _domain_keys(
            addresses.to_matrix(messages.column("exporter"))[rows],
            messages.column("domain").to_numpy(zero_copy_only=False)[rows],
        )
        announced = messages.column("flows").to_numpy(zero_copy_only=False)[rows].astype(np.int64)
        first, group = group_rows(np.concatenate([flow_keys, message_keys]))
        n_flows = flow_keys.shape[0]
        surplus = np.bincount(group[:n_flows], minlength=first.shape[0]) - np.bincount(
            group[n_flows:], weights=announced, minlength=first.shape[0]
        ).astype(np.int64)
        keys = np.concatenate([flow_keys, message_keys])
        for index in np.flatnonzero(surplus > 0).tolist():
            key = keys[first[index]].tobytes()
            owner = self.exporters.get(("netflow", key[:16]))
            state = owner.streams.get((IPFIX, int.from_bytes(key[16:], "big"), 0, 0)) if owner else None
            if owner is not None:
                owner.flows += int(surplus[index])
            if state is not None:
                state.late += int(surplus[index])

    def _exporter(self, protocol: str, exporter: bytes) -> ExporterHealth:
        return self.exporters.setdefault((protocol, exporter), ExporterHealth())

    def _count_datagrams(
        self,
        protocol: str,
        exporter: np.ndarray,
        stream: np.ndarray,
        flow_records: np.ndarray,
        received: np.ndarray,
        status: pa.ChunkedArray,
        ok: np.ndarray,
    ) -> None:
        rows = np.flatnonzero(stream == 0)
        if rows.size == 0:
            return
        representative, group = group_rows(exporter[rows])
        groups = representative.shape[0]
        datagrams = np.bincount(group, minlength=groups)
        flows = np.bincount(group, weights=flow_records[rows], minlength=groups)
        first = np.full(groups, np.iinfo(np.int64).max)
        np.minimum.at(first, group, received[rows])
        last = np.zeros(groups, np.int64)
        np.maximum.at(last, group, received[rows])
        for index, row in enumerate(representative.tolist()):
            owner = self._exporter(protocol, exporter[rows[row]].tobytes())
            owner.datagrams += int(datagrams[index])
            owner.flows += int(flows[index])
            owner.first_seen_ns = owner.first_seen_ns or int(first[index])
            owner.last_seen_ns = max(owner.last_seen_ns, int(last[index]))
        bad = rows[~ok[rows]]
        if bad.size:
            reasons = status.take(pa.array(bad)).to_pylist()
            for row, reason in zip(bad.tolist(), reasons, strict=True):  # only failed datagrams: rare
                self._exporter(protocol, exporter[row].tobytes()).errors[reason] += 1

    def snapshot(self) -> dict:
        """Everything as plain JSON data (see ``merge_snapshots`` for several processes)."""
        exporters = []
        for (protocol, exporter), health in sorted(self.exporters.items()):
            streams = [
                {
                    "version": version,
                    "domain": domain,
                    "stream": STREAM_NAMES.get(stream, str(stream)),
                    "source": source,
                    "received": s.received,
                    "missing": s.missing,
                    "late": s.late,
                    "resets": s.resets,
                }
                for (version, domain, stream, source), s in sorted(health.streams.items())
            ]
            exporters.append(
                {
                    "protocol": protocol,
                    "exporter": addresses.format_one(exporter),
                    "datagrams": health.datagrams,
                    "flows": health.flows,
                    "first_seen_ns": health.first_seen_ns,
                    "last_seen_ns": health.last_seen_ns,
                    "errors": dict(health.errors),
                    "streams": streams,
                    "sampling": [
                        {"source": source, "rate": rate or None, "flows": count}
                        for (address, source, rate), count in sorted(self.sampling.items())
                        if address == exporter
                    ],
                }
            )
        return {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started_ns": self.started_ns,
            "updated_ns": time.time_ns(),
            "listeners": {name: vars(listener) for name, listener in sorted(self.listeners.items())},
            "skips": dict(self.skips.counts),
            "rows_written": dict(self.rows_written),
            "templates": dict(self.templates),
            "captures": {name: dict(counters) for name, counters in sorted(self.captures.items())},
            "exporters": exporters,
            "kind": self.kind,
        }

    def save(self, lake_root: Path, name: str, *, run_id: str = "") -> Path:
        """Write the snapshot as ``health-NAME.json`` (a process's file is replaced by its next run's)."""
        path = Path(lake_root) / HEALTH_DIR / f"health-{name}.json"
        write_json_atomically(path, {**self.snapshot(), "name": name, "run_id": run_id})
        return path


def save_health(
    lake_root: str | Path, health: Health, name: str, *, run_id: str, state: NetflowState | None = None
) -> Path:
    """Leave one run's health in the lake: the snapshot ``_collector/health-NAME.json`` (``flowscope
    exporters`` shows the latest run's) and, given the run's NetFlow state, the templates and sampling
    rates it learnt (``_collector/templates.json``, merged with what is saved there: ``flowscope
    templates``, and the next collector decodes with them). The collector calls it every second and
    at exit, ``read --as-exports`` once at the end. Returns the snapshot's path.
    """
    if state is not None:
        health.templates = {"known": len(state.templates.templates), "held_sets": state.templates.held_sets}
        health.sampling.update(state.sampling.applied)
        state.sampling.applied.clear()  # counted once: the health keeps the run's totals
        state.save(lake_root=lake_root)
    return health.save(Path(lake_root), name, run_id=run_id)


def load_snapshots(lake_root: Path) -> list[dict]:
    """Every collector process's last snapshot in a lake (unreadable files are skipped)."""
    snapshots = []
    for path in sorted((Path(lake_root) / HEALTH_DIR).glob(HEALTH_GLOB)):
        try:
            snapshots.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return snapshots


def merge_snapshots(snapshots: list[dict]) -> dict:
    """Sum several processes' snapshots (workers of one collector, or successive runs)."""
    exporters: dict[tuple[str, str], dict] = {}
    listeners: dict[str, dict] = {}
    skips: Counter[str] = Counter()
    rows_written: Counter[str] = Counter()
    templates: Counter[str] = Counter()
    captures: dict[str, Counter[str]] = {}
    for snap in snapshots:
        for name, counters in snap.get("captures", {}).items():
            merged_capture = captures.setdefault(name, Counter())
            for counter, value in counters.items():
                if isinstance(value, int):
                    merged_capture[counter] += value
        skips.update(snap.get("skips", {}))
        rows_written.update(snap.get("rows_written", {}))
        templates.update(snap.get("templates", {}))
        for name, listener in snap.get("listeners", {}).items():
            merged = listeners.setdefault(name, {**listener, **dict.fromkeys(LISTENER_COUNTERS, 0), "processes": 0})
            for counter in LISTENER_COUNTERS:
                merged[counter] += listener.get(counter, 0)
            merged["processes"] += 1
            merged["receive_buffer"] = max(merged.get("receive_buffer", 0), listener.get("receive_buffer", 0))
        for item in snap.get("exporters", []):
            key = (item["protocol"], item["exporter"])
            merged = exporters.setdefault(
                key,
                {
                    "protocol": key[0],
                    "exporter": key[1],
                    "datagrams": 0,
                    "flows": 0,
                    "first_seen_ns": 0,
                    "last_seen_ns": 0,
                    "errors": Counter(),
                    "lost": Counter(),
                    "late": Counter(),
                    "resets": 0,
                    "streams": [],
                    "sampling": Counter(),
                },
            )
            merged["datagrams"] += item["datagrams"]
            merged["flows"] += item["flows"]
            firsts = [t for t in (merged["first_seen_ns"], item["first_seen_ns"]) if t]
            merged["first_seen_ns"] = min(firsts) if firsts else 0
            merged["last_seen_ns"] = max(merged["last_seen_ns"], item["last_seen_ns"])
            merged["errors"].update(item.get("errors", {}))
            merged["streams"].extend(item.get("streams", []))
            for entry in item.get("sampling", []):
                merged["sampling"][(entry["source"], entry["rate"])] += entry["flows"]
            for stream in item.get("streams", []):
                unit = loss_unit(key[0], stream["version"], stream["stream"])
                merged["lost"][unit] += max(0, stream["missing"] - stream["late"])
                merged["late"][unit] += stream["late"]
                merged["resets"] += stream["resets"]
    for merged in exporters.values():
        for counter in ("errors", "lost", "late"):
            merged[counter] = dict(merged[counter])
        merged["sampling"] = [
            {"source": source, "rate": rate, "flows": flows}
            for (source, rate), flows in sorted(merged["sampling"].items(), key=lambda kv: -kv[1])
        ]
    return {
        "exporters": [exporters[k] for k in sorted(exporters)],
        "listeners": listeners,
        "skips": dict(skips),
        "rows_written": dict(rows_written),
        "templates": dict(templates),
        "captures": {name: dict(counters) for name, counters in sorted(captures.items())},
    }


def loss_unit(protocol: str, version: int, stream: str) -> str:
    """What the sequence of a stream counts, for display."""
    if stream != "datagrams":
        return "samples"
    if protocol == "netflow" and version in (5, 10):
        return "flows"
    return "datagrams"
