"""Flow metering: packet batches in, finished flow records out, a whole batch at a time.

The flow cache is a struct of arrays, one row per active flow, sorted by key hash. Each packet
batch becomes one-packet "flow rows"; the cached flows whose keys occur in the batch are taken
out and appended; sorting by (flow key, start time) puts every flow's rows side by side,
timeouts become comparisons between neighbours, and the per-flow counters are ``reduceat``
sums over the runs. The last run of every key goes back into the cache unless it has timed
out; every earlier run is a finished flow. Cached flows the batch did not touch are only
checked for timeouts, so a batch costs O(batch log batch) plus a linear pass over the cache. So a flow that spans
batches or files is metered exactly as one that does not, with no Python object per packet
or per flow.

Semantics (nfpcapd's defaults, NFStream's comparisons):
- key: addresses, ports, IP protocol and VLAN; biflows by default, where the sender of a flow's
  first packet is its source; ``uniflow`` meters each direction on its own (NetFlow style);
- ICMP and ICMPv6 messages are keyed by type and code too, as nfdump, ipfixprobe and YAF do (in
  the key's destination port, type * 256 + code), so different messages between two hosts are
  different flows; a reply is keyed as its query seen from the other side, so an echo exchange
  stays one biflow (``_icmp_key_ports``). The output keeps ports 0 and the first packet's
  ``icmp_type``/``icmp_code``;
- a packet starts a new flow when it arrives ``idle`` seconds or more after the flow's last
  packet, or ``active`` seconds or more after the flow's first packet;
- bytes are IP-layer (the IP header's length) unless ``link_bytes`` (captured frame's wire length);
- a non-first fragment has no ports: it joins the flow of its first fragment, found by
  (source, destination, protocol, fragment id);
- the cache holds at most ``max_flows`` flows; beyond that the flows idle longest are exported
  early and counted in ``early_expired``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from flowscope.capture.community_id import community_ids
from flowscope.capture.options import MeterOptions
from flowscope.capture.packets import PacketBatch
from flowscope.diagnostics import Skips
from flowscope.schema import FLOW_SCHEMA, TIMESTAMP, conform

NS_PER_S = 1_000_000_000
EXPORT_ROWS = 1 << 16
FLOW_TYPE = "pcap"

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX = np.uint64(0xBF58476D1CE4E5B9)


# The flow cache's columns: (name, dtype, trailing shape). a/b are the key's endpoints in
# canonical order (biflow: the smaller (address, port) is a; uniflow: a is the sender).
# Addresses are kept as two big-endian-valued words each (integer order is address order);
# ports, protocol and VLAN are packed into one word, so a key compares as five integers.
_KEY = (
    ("key", np.uint64, ()),
    ("a_hi", np.uint64, ()),
    ("a_lo", np.uint64, ()),
    ("b_hi", np.uint64, ()),
    ("b_lo", np.uint64, ()),
    ("ports", np.uint64, ()),
)
_EXACT_KEY = ("a_hi", "a_lo", "b_hi", "b_lo", "ports")
_FIRST = (  # taken from a flow's first packet
    ("first_ns", np.int64, ()),
    ("from_b", np.bool_, ()),
    ("ip_tos", np.uint8, ()),
    ("ip_ttl", np.uint8, ()),
    ("etype", np.uint16, ()),
    ("icmp_type", np.uint8, ()),
    ("icmp_code", np.uint8, ()),
    ("src_mac", np.uint64, ()),
    ("dst_mac", np.uint64, ()),
)
_SUMMED = (
    ("packets_ab", np.uint64, ()),
    ("packets_ba", np.uint64, ()),
    ("bytes_ab", np.uint64, ()),
    ("bytes_ba", np.uint64, ()),
)
_COLUMNS = (*_KEY, *_FIRST, *_SUMMED, ("last_ns", np.int64, ()), ("tcp_flags", np.uint8, ()))
BYTES_PER_FLOW = sum(np.dtype(dtype).itemsize * int(np.prod(shape)) for _, dtype, shape in _COLUMNS)


class FlowRows:
    """Flow state as equal-length arrays; a packet is a flow row of one packet."""

    def __init__(self, columns: dict[str, np.ndarray]) -> None:
        self.columns = columns

    @classmethod
    def empty(cls) -> FlowRows:
        return cls({name: np.zeros((0, *shape), dtype) for name, dtype, shape in _COLUMNS})

    def __len__(self) -> int:
        return int(self.columns["key"].shape[0])

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]

    def slice(self, start: int, stop: int) -> FlowRows:
        """Rows ``start:stop`` as views (no copy)."""
        return FlowRows({name: values[start:stop] for name, values in self.columns.items()})

    def take(self, rows: np.ndarray) -> FlowRows:
        """Rows by index or boolean mask (a mask is turned into indexes once, not once per column)."""
        if rows.dtype == np.bool_:
            rows = np.flatnonzero(rows)
        return FlowRows({name: values.take(rows, axis=0) for name, values in self.columns.items()})

    @staticmethod
    def concat(parts: list[FlowRows]) -> FlowRows:
        parts = [part for part in parts if len(part)]
        if len(parts) == 1:
            return parts[0]
        if not parts:
            return FlowRows.empty()
        return FlowRows({name: np.concatenate([part[name] for part in parts]) for name, _, _ in _COLUMNS})


class FlowCache:
    """The active flows: key-sorted rows in preallocated arrays that are changed in place.

    Removing and inserting flows works one column at a time, so besides the arrays themselves
    (120 bytes per flow, up to 25 % spare capacity) only one column's worth of scratch memory is
    ever needed: memory per active flow stays under 200 bytes however many flows are active.
    """

    GROWTH = 1.25

    def __init__(self) -> None:
        self._columns = {name: np.zeros((0, *shape), dtype) for name, dtype, shape in _COLUMNS}
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, name: str) -> np.ndarray:
        return self._columns[name][: self.size]

    @property
    def nbytes(self) -> int:
        return sum(values.nbytes for values in self._columns.values())

    def rows(self) -> FlowRows:
        """The live rows as views (valid until the cache changes)."""
        return FlowRows({name: values[: self.size] for name, values in self._columns.items()})

    def keep(self, selector: np.ndarray) -> None:
        """Keep only the selected rows (mask or increasing indexes), in place."""
        rows = np.flatnonzero(selector) if selector.dtype == np.bool_ else selector
        for values in self._columns.values():
            values[: rows.size] = values[rows]
        self.size = int(rows.size)

    def insert(self, new: FlowRows) -> None:
        """Insert key-sorted rows at their sorted places."""
        count = len(new)
        if count == 0:
            return
        total = self.size + count
        at = np.searchsorted(self["key"], new["key"], side="right") + np.arange(count)
        is_new = np.zeros(total, bool)
        is_new[at] = True
        old_at = np.flatnonzero(~is_new)
        self._reserve(total)
        for name, values in self._columns.items():
            old = values[: self.size].copy()
            values[at] = new[name]
            values[old_at] = old
        self.size = total

    def _reserve(self, total: int) -> None:
        capacity = self._columns["key"].shape[0]
        if total <= capacity:
            return
        capacity = max(total, int(capacity * self.GROWTH), 1024)
        for name, values in self._columns.items():
            grown = np.empty((capacity, *values.shape[1:]), values.dtype)
            grown[: self.size] = values[: self.size]
            self._columns[name] = grown


def _address_words(addresses: np.ndarray) -> np.ndarray:
    """(n, 16) bytes -> (2, n) uint64 (high words, low words; each contiguous), integer order = address order."""
    return np.ascontiguousarray(addresses).view(">u8").T.astype(np.uint64, order="C")


def _hash_words(*columns: np.ndarray) -> np.ndarray:
    """A 64-bit multiply-xorshift hash over the columns, computed in place (wrapping arithmetic is intended)."""
    h = np.full(columns[0].shape[0], _MIX, np.uint64)
    spare = np.empty_like(h)
    for column in columns:
        h ^= column if column.dtype == np.uint64 else column.astype(np.uint64)
        h *= _GOLDEN
        np.right_shift(h, np.uint64(31), out=spare)
        h ^= spare
    return h


PROTO_ICMP, PROTO_ICMPV6 = 1, 58


def _query_table(pairs: dict[int, int]) -> np.ndarray:
    """256 entries: the query type a reply type answers, -1 for messages that are no reply."""
    table = np.full(256, -1, np.int64)
    table[list(pairs)] = list(pairs.values())
    return table


# Reply -> query types of the exchanges a host answers to its asker: ICMP echo, timestamp, information and
# address mask (RFC 792, 950); ICMPv6 echo (RFC 4443) and node information (RFC 4620). Neighbour and
# router discovery and MLD are not paired: solicitations go to multicast groups and advertisements and
# reports are often unsolicited, so they are kept apart, as nfdump, ipfixprobe and YAF do.
_ICMP_QUERY_OF = _query_table({0: 8, 14: 13, 16: 15, 18: 17})
_ICMPV6_QUERY_OF = _query_table({129: 128, 140: 139})


def _icmp_key_ports(batch: PacketBatch, src_port: np.ndarray, dst_port: np.ndarray) -> None:
    """Put ICMP/ICMPv6 type and code into the key's ports (in place): a message in the destination port
    (type * 256 + code, nfdump's convention), a reply in the source port as the query it answers, so
    query and reply key alike once the endpoints are put in canonical order. Later fragments carry no
    ICMP header: they get their first fragment's key ports like any other fragment."""
    icmp = ((batch.proto == PROTO_ICMP) | (batch.proto == PROTO_ICMPV6)) & (batch.frag_offset == 0)
    if not icmp.any():
        return
    rows = np.flatnonzero(icmp)
    kind = batch.icmp_type[rows]
    query = np.where(batch.proto[rows] == PROTO_ICMP, _ICMP_QUERY_OF[kind], _ICMPV6_QUERY_OF[kind])
    reply = query >= 0
    message = (np.where(reply, query, kind) << 8) | batch.icmp_code[rows]
    src_port[rows] = np.where(reply, message, 0)
    dst_port[rows] = np.where(reply, 0, message)


class _FragmentPorts:
    """Ports of recently seen first fragments, so later fragments can join their flow."""

    def __init__(self, timeout_ns: int) -> None:
        self.timeout_ns = timeout_ns
        self.keys = np.zeros(0, np.uint64)
        self.src_port = np.zeros(0, np.uint16)
        self.dst_port = np.zeros(0, np.uint16)
        self.seen_ns = np.zeros(0, np.int64)

    @staticmethod
    def fragment_keys(batch: PacketBatch, rows: np.ndarray) -> np.ndarray:
        src = _address_words(batch.src_addr[rows])
        dst = _address_words(batch.dst_addr[rows])
        return _hash_words(src[0], src[1], dst[0], dst[1], batch.proto[rows], batch.frag_id[rows])

    def assign(self, batch: PacketBatch, src_port: np.ndarray, dst_port: np.ndarray, clock_ns: int) -> np.ndarray:
        """Give later fragments their first fragment's key ports (in ``src_port``/``dst_port``, in place);
        returns the times of those that found none."""
        firsts = np.flatnonzero((batch.frag_offset == 0) & batch.more_fragments)
        laters = np.flatnonzero(batch.frag_offset > 0)
        if firsts.size:
            self.keys = np.concatenate([self.keys, self.fragment_keys(batch, firsts)])
            self.src_port = np.concatenate([self.src_port, src_port[firsts]])
            self.dst_port = np.concatenate([self.dst_port, dst_port[firsts]])
            self.seen_ns = np.concatenate([self.seen_ns, batch.ts_ns[firsts]])
            # keep the latest entry per key, sorted by key for lookups
            order = np.lexsort((self.seen_ns, self.keys))
            keep = np.ones(order.size, bool)
            keep[:-1] = self.keys[order][1:] != self.keys[order][:-1]
            self._keep(order[keep])
        unmatched = np.zeros(0, np.int64)
        if laters.size:
            wanted = self.fragment_keys(batch, laters)
            found = np.zeros(laters.size, bool)
            if self.keys.size:
                at = np.minimum(np.searchsorted(self.keys, wanted), self.keys.size - 1)
                found = self.keys[at] == wanted
                src_port[laters[found]] = self.src_port[at[found]]
                dst_port[laters[found]] = self.dst_port[at[found]]
            unmatched = batch.ts_ns[laters[~found]]
        if self.keys.size:
            self._keep(np.flatnonzero(self.seen_ns > clock_ns - self.timeout_ns))
        return unmatched

    ARRAYS = ("keys", "src_port", "dst_port", "seen_ns")

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in self.ARRAYS}

    def load(self, arrays: dict[str, np.ndarray]) -> None:
        for name in self.ARRAYS:
            setattr(self, name, np.asarray(arrays[name], getattr(self, name).dtype))

    def _keep(self, rows: np.ndarray) -> None:
        self.keys, self.src_port = self.keys[rows], self.src_port[rows]
        self.dst_port, self.seen_ns = self.dst_port[rows], self.seen_ns[rows]


class FlowMeter:
    """Meters a stream of packet batches; ``add`` and ``flush`` return finished flows as Arrow tables."""

    def __init__(self, settings: MeterOptions | None = None, skips: Skips | None = None) -> None:
        self.settings = settings or MeterOptions()
        self.skips = skips if skips is not None else Skips(unit="packets")
        self.cache = FlowCache()
        self.clock_ns: int | None = None
        self.packets = 0
        self.early_expired = 0
        self.unmatched_fragments = 0
        self.earliest_unmatched_ns: int | None = None
        """Time of the earliest later fragment that found no first fragment (``flowscope.jobs.stitch`` asks)."""
        self.peak_flows = 0
        self._idle_ns = int(self.settings.idle * NS_PER_S)
        self._active_ns = int(self.settings.active * NS_PER_S)
        self._fragments = _FragmentPorts(int(self.settings.fragment_timeout * NS_PER_S))

    def add(self, batch: PacketBatch) -> pa.Table:
        """Meter one batch; returns the flows it finished (timed out, split, or pushed out of a full cache)."""
        return self.table(self.add_rows(batch))

    def add_rows(self, batch: PacketBatch) -> FlowRows:
        """``add`` without the conversion to a table: callers gathering the flows of many batches into one
        table convert once (the conversion and the community IDs cost per call as much as per flow)."""
        return self.add_packet_rows(self.packet_rows(batch))

    def add_packet_rows(self, rows: FlowRows, clock_ns: int | None = None) -> FlowRows:
        """Meter packet rows (``packet_rows``); ``clock_ns`` moves the clock on as if packets of other keys
        had come too (the stitcher of ``flowscope.jobs`` replays a batch of which it holds some keys only)."""
        if not len(rows) and clock_ns is None:
            return FlowRows.empty()
        latest = [int(rows["last_ns"].max())] if len(rows) else []
        self.clock_ns = max(latest + [clock for clock in (self.clock_ns, clock_ns) if clock is not None])
        if not len(rows):  # nothing to merge: cached flows can only time out
            expired = self._timed_out(self.cache)
            finished = self.cache.rows().take(expired)
            self.cache.keep(~expired)
            return finished
        # Only cached flows whose key occurs in this batch take part in the merge; the others
        # can only time out, which is one comparison each. Copies of the whole cache are kept to
        # one at a time (memory per active flow stays near the cache's own 120 bytes).
        packets = _sort_packets(rows)
        if packets is None:
            touched = _touched(self.cache["key"], _distinct(np.sort(rows["key"])))
        else:  # on the hash bits the sort kept: may take in a few more cached flows, which is harmless
            touched = _touched(self.cache["key"] >> packets.shift, _distinct(packets.hashes))
        expired = ~touched & self._timed_out(self.cache)
        live = self.cache.rows()
        cached, idle = live.take(touched), live.take(expired)
        del live
        self.cache.keep(~(touched | expired))
        flows, last_of_key = self._merge(FlowRows.concat([cached, rows]), len(cached), packets)
        del cached, rows
        done = ~last_of_key | self._timed_out(flows)
        continuing = flows.take(~done)
        finished = FlowRows.concat([flows.take(done), idle])
        del flows, idle
        self.cache.insert(continuing.take(np.argsort(continuing["key"])))
        finished = FlowRows.concat([finished, self._enforce_limit()])
        self.peak_flows = max(self.peak_flows, len(self.cache))
        return finished

    def _timed_out(self, flows: FlowRows | FlowCache) -> np.ndarray:
        return (self.clock_ns - flows["last_ns"] >= self._idle_ns) | (
            self.clock_ns - flows["first_ns"] >= self._active_ns
        )

    def flush(self) -> Iterator[pa.Table]:
        """Export every flow still in the cache (end of input), in tables of at most ``EXPORT_ROWS`` flows."""
        cache, self.cache = self.cache.rows(), FlowCache()
        for start in range(0, len(cache), EXPORT_ROWS):
            yield self.table(cache.slice(start, start + EXPORT_ROWS))

    def state(self) -> dict[str, np.ndarray]:
        """The cache, clock and fragment table as named arrays (for ``np.savez``), so metering can
        resume after a restart with flows that span it still one flow."""
        arrays = {f"cache.{name}": values for name, values in self.cache.rows().columns.items()}
        arrays["clock_ns"] = np.array([-1 if self.clock_ns is None else self.clock_ns], np.int64)
        arrays.update({f"fragments.{name}": values for name, values in self._fragments.arrays().items()})
        return arrays

    def restore(self, arrays: dict[str, np.ndarray]) -> None:
        """Continue from a saved ``state()``."""
        cache = FlowRows({name: np.asarray(arrays[f"cache.{name}"], dtype) for name, dtype, _ in _COLUMNS})
        self.cache = FlowCache()
        self.cache.insert(cache.take(np.argsort(cache["key"], kind="stable")))
        clock = int(arrays["clock_ns"][0])
        self.clock_ns = None if clock < 0 else clock
        self._fragments.load({name: arrays[f"fragments.{name}"] for name in _FragmentPorts.ARRAYS})

    def _enforce_limit(self) -> FlowRows:
        excess = len(self.cache) - self.settings.max_flows
        if excess <= 0:
            return FlowRows.empty()
        oldest = np.zeros(len(self.cache), bool)
        oldest[np.argpartition(self.cache["last_ns"], excess - 1)[:excess]] = True
        self.early_expired += excess
        evicted = self.cache.rows().take(oldest)
        self.cache.keep(~oldest)
        return evicted

    def packet_rows(self, batch: PacketBatch) -> FlowRows:
        """One flow row per IP packet, keyed canonically (later fragments get their first fragment's ports)."""
        not_ip = batch.ip_version == 0
        if not_ip.any():
            self.skips.add("not IP (no flow key)", int(not_ip.sum()))
            batch = batch.take(~not_ip)
        n = len(batch)
        self.packets += n
        if n == 0:
            return FlowRows.empty()
        src_port, dst_port = batch.src_port.copy(), batch.dst_port.copy()  # the key's ports
        _icmp_key_ports(batch, src_port, dst_port)
        if batch.more_fragments.any() or (batch.frag_offset > 0).any():
            latest = int(batch.ts_ns.max())
            clock = latest if self.clock_ns is None else max(self.clock_ns, latest)
            unmatched = self._fragments.assign(batch, src_port, dst_port, clock)
            if unmatched.size:
                self.unmatched_fragments += int(unmatched.size)
                earliest = int(unmatched.min())
                if self.earliest_unmatched_ns is None or earliest < self.earliest_unmatched_ns:
                    self.earliest_unmatched_ns = earliest
        src_hi, src_lo = _address_words(batch.src_addr)
        dst_hi, dst_lo = _address_words(batch.dst_addr)
        if self.settings.uniflow:
            from_b = np.zeros(n, bool)
        else:
            same_hi = src_hi == dst_hi
            from_b = (src_hi > dst_hi) | (same_hi & (src_lo > dst_lo))
            from_b |= same_hi & (src_lo == dst_lo) & (src_port > dst_port)
        swap = _all_ones(from_b)
        a_hi, b_hi = _swapped(swap, src_hi, dst_hi)
        a_lo, b_lo = _swapped(swap, src_lo, dst_lo)
        ports = _swap_ports(swap, _pack_ports(src_port, dst_port, batch.proto, batch.vlan_id))
        size = (batch.wire_len if self.settings.link_bytes else batch.ip_len).astype(np.uint64)
        other = from_b.astype(np.uint64)
        one = other ^ np.uint64(1)
        return FlowRows(
            {
                "key": _hash_words(a_hi, a_lo, b_hi, b_lo, ports),
                "a_hi": a_hi,
                "a_lo": a_lo,
                "b_hi": b_hi,
                "b_lo": b_lo,
                "ports": ports,
                "first_ns": batch.ts_ns,
                "from_b": from_b,
                "ip_tos": batch.ip_tos,
                "ip_ttl": batch.ip_ttl,
                "etype": batch.etype,
                "icmp_type": batch.icmp_type,
                "icmp_code": batch.icmp_code,
                "src_mac": batch.src_mac,
                "dst_mac": batch.dst_mac,
                "packets_ab": one,
                "packets_ba": other,
                "bytes_ab": size & ~swap,
                "bytes_ba": size & swap,
                "last_ns": batch.ts_ns,
                "tcp_flags": batch.tcp_flags,
            }
        )

    @staticmethod
    def _order(rows: FlowRows, cached: int, packets: _SortedPackets | None) -> tuple[np.ndarray, np.ndarray]:
        """Row order by (flow key, start time) and where each key's run begins.

        The first ``cached`` rows are the cached flows (sorted by key, one per key), the rest the packets
        (``packets``: their order when they came in time order). When the packets come after everything
        cached (the normal case), each cached row goes before the packets of its hash bits, found by a
        binary search: no second sort. Otherwise a two-key sort. Rows with equal hash bits are then
        compared on the full key, and if different keys did collide the rows are re-sorted by the full
        key: the result is exact either way.
        """
        first = rows["first_ns"]
        n = first.size
        if packets is not None and (cached == 0 or first[cached] >= first[:cached].max()):
            cached_hashes = rows["key"][:cached] >> packets.shift
            at = np.searchsorted(packets.hashes, cached_hashes) + np.arange(cached)
            placed = np.zeros(n, bool)
            placed[at] = True
            order, hashes = np.empty(n, np.intp), np.empty(n, np.uint64)
            order[at], hashes[at] = np.arange(cached), cached_hashes
            order[~placed], hashes[~placed] = packets.order + cached, packets.hashes
        else:
            order = np.lexsort((first, rows["key"]))
            hashes = rows["key"][order]
        new_key = np.ones(n, bool)
        new_key[1:] = hashes[1:] != hashes[:-1]
        if not (_key_changes(rows, order) & ~new_key).any():
            return order, new_key
        order = np.lexsort((first, *(rows[name] for name in reversed(_EXACT_KEY))))
        return order, _key_changes(rows, order)

    def _merge(self, rows: FlowRows, cached: int, packets: _SortedPackets | None) -> tuple[FlowRows, np.ndarray]:
        """Sort rows into flows, split them at idle/active timeouts, and sum each flow's rows.

        Also returns which flows are the latest of their key (the only ones that may continue).
        """
        order, new_key = self._order(rows, cached, packets)
        first = rows["first_ns"][order]
        last = rows["last_ns"][order]
        seen_until = _running_max(last, new_key)
        starts = new_key.copy()
        starts[1:] |= first[1:] - seen_until[:-1] >= self._idle_ns
        starts = _split_active(starts, first, self._active_ns)
        at = np.flatnonzero(starts)
        first_rows = order[at]
        columns = {name: rows[name][first_rows] for name, _, _ in (*_KEY, *_FIRST)}
        ends = np.append(at[1:], order.size) - 1
        for name, _, _ in _SUMMED:
            columns[name] = _run_sums(rows[name][order], ends)
        # in time order the end times only grow within a key, so a flow's last row holds its maximum
        columns["last_ns"] = last[ends] if seen_until is last else np.maximum.reduceat(last, at)
        columns["tcp_flags"] = np.bitwise_or.reduceat(rows["tcp_flags"][order], at)
        latest = np.ones(at.size, bool)
        latest[:-1] = new_key[at[1:]]
        return FlowRows(columns), latest

    def table(self, flows: FlowRows) -> pa.Table:
        """Finished flows -> flow-schema table, oriented so the first packet's sender is the source."""
        n = len(flows)
        swap = _all_ones(flows["from_b"])
        src_hi, dst_hi = _swapped(swap, flows["a_hi"], flows["b_hi"])
        src_lo, dst_lo = _swapped(swap, flows["a_lo"], flows["b_lo"])
        src, dst = _address_bytes(src_hi, src_lo), _address_bytes(dst_hi, dst_lo)
        src_port, dst_port, proto, vlan_id = _unpack_ports(_swap_ports(swap, flows["ports"].copy()))
        icmp = (proto == PROTO_ICMP) | (proto == PROTO_ICMPV6)  # type and code were key, the schema has ports 0
        src_port[icmp] = 0
        dst_port[icmp] = 0
        packets, packets_rev = _swapped(swap, flows["packets_ab"], flows["packets_ba"])
        bytes_, bytes_rev = _swapped(swap, flows["bytes_ab"], flows["bytes_ba"])
        end = _timestamps(flows["last_ns"])
        columns = {
            "type": _repeated_text(FLOW_TYPE, n),
            "time_received": end,
            "time_flow_start": _timestamps(flows["first_ns"]),
            "time_flow_end": end,
            "sampling_rate": _column(np.ones(n, np.uint64)),
            "src_addr": _binary16(src),
            "dst_addr": _binary16(dst),
            "src_port": _column(src_port),
            "dst_port": _column(dst_port),
            "proto": _column(proto),
            "etype": _column(flows["etype"]),
            "bytes": _column(bytes_),
            "packets": _column(packets),
            "bytes_rev": _column(bytes_rev),
            "packets_rev": _column(packets_rev),
            "tcp_flags": _column(flows["tcp_flags"].astype(np.uint16)),
            "ip_tos": _column(flows["ip_tos"]),
            "ip_ttl": _column(flows["ip_ttl"]),
            "vlan_id": _column(vlan_id),
            "icmp_type": _column(flows["icmp_type"]),
            "icmp_code": _column(flows["icmp_code"]),
            "src_mac": _column(flows["src_mac"]),
            "dst_mac": _column(flows["dst_mac"]),
            "community_id": community_ids(src, dst, proto, src_port, dst_port, flows["icmp_type"], flows["icmp_code"]),
        }
        return conform(pa.table(columns), keep_extra=False)


def _pack_ports(a_port: np.ndarray, b_port: np.ndarray, proto: np.ndarray, vlan_id: np.ndarray) -> np.ndarray:
    return (
        (a_port.astype(np.uint64) << np.uint64(48))
        | (b_port.astype(np.uint64) << np.uint64(32))
        | (vlan_id.astype(np.uint64) << np.uint64(8))
        | proto.astype(np.uint64)
    )


def _swap_ports(swap: np.ndarray, ports: np.ndarray) -> np.ndarray:
    """Packed ports with the two port fields exchanged where ``swap`` is all ones (in place)."""
    exchange = ((ports >> np.uint64(16)) ^ ports) & np.uint64(0xFFFF << 32) & swap
    ports ^= exchange | (exchange << np.uint64(16))
    return ports


def _all_ones(mask: np.ndarray) -> np.ndarray:
    """bool -> uint64 with every bit set where True: a selector for ``_swapped``."""
    return np.negative(mask.astype(np.uint64))


def _swapped(swap: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(y, x)`` where ``swap`` is all ones, else ``(x, y)``: an xor swap, several times faster than two np.where."""
    difference = x ^ y
    difference &= swap
    return x ^ difference, y ^ difference


def _unpack_ports(ports: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """-> first port, second port, proto, vlan_id."""
    return (
        (ports >> np.uint64(48)).astype(np.uint16),
        ((ports >> np.uint64(32)) & np.uint64(0xFFFF)).astype(np.uint16),
        (ports & np.uint64(0xFF)).astype(np.uint8),
        ((ports >> np.uint64(8)) & np.uint64(0xFFFF)).astype(np.uint16),
    )


def _address_bytes(hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """Two address words per row -> (n, 16) network-order bytes."""
    return np.stack([hi, lo], axis=1).astype(">u8").view(np.uint8).reshape(-1, 16)


def _touched(sorted_keys: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Mask of the rows of ``sorted_keys`` whose value occurs in ``wanted`` (any order, repeats allowed)."""
    mask = np.zeros(sorted_keys.size, bool)
    if sorted_keys.size == 0:
        return mask
    at = np.searchsorted(sorted_keys, wanted)
    inside = at < sorted_keys.size
    at = at[inside]
    mask[at[sorted_keys[at] == wanted[inside]]] = True
    repeated = sorted_keys[1:] == sorted_keys[:-1]
    if repeated.any():  # flows whose keys share a hash: a hit on one marks its whole run
        run = np.concatenate([[0], np.cumsum(~repeated)])
        hit_runs = np.zeros(int(run[-1]) + 1, bool)
        hit_runs[run[mask]] = True
        mask = hit_runs[run]
    return mask


def _distinct(values: np.ndarray) -> np.ndarray:
    """The distinct values of sorted ``values`` (``np.unique`` is several times slower for this)."""
    distinct = np.ones(values.size, bool)
    distinct[1:] = values[1:] != values[:-1]
    return values[distinct]


@dataclass
class _SortedPackets:
    """Packet rows in (key hash, arrival) order: ``order`` indexes the rows, ``hashes`` are their keys'
    hash bits shifted right by ``shift`` (the bits the sort kept), non-decreasing."""

    order: np.ndarray
    hashes: np.ndarray
    shift: np.uint64


def _sort_packets(rows: FlowRows) -> _SortedPackets | None:
    """The packet rows by key hash, then arrival, when they came in time order (else None).

    Arrival order is then time order within a key, so one unstable sort of words holding a row's hash
    bits above its position does it (the words are distinct and carry their row: sorting values beats
    argsort 3x). The same sort gives the batch's distinct keys and, merged with the cached flows by a
    binary search, the order of the merge (``FlowMeter._order``): a third of the meter's time went to
    sorting the batch's keys and then the batch again with its cached flows (hostile capture, 2 M packets).
    """
    first = rows["first_ns"]
    n = first.size
    shift = max(1, int(n).bit_length())
    if shift > 32 or not (first[1:] >= first[:-1]).all():
        return None
    low = np.uint64((1 << shift) - 1)
    word = (rows["key"] & ~low) | np.arange(n, dtype=np.uint64)
    word.sort()
    return _SortedPackets((word & low).astype(np.intp), word >> np.uint64(shift), np.uint64(shift))


def _key_changes(rows: FlowRows, order: np.ndarray) -> np.ndarray:
    """Where the full flow key differs from the previous row's (the first row counts as a change)."""
    changes = np.ones(order.size, bool)
    changes[1:] = False
    for name in _EXACT_KEY:
        values = rows[name][order]
        changes[1:] |= values[1:] != values[:-1]
    return changes


def _repeated_text(text: str, count: int) -> pa.Array:
    """``count`` copies of one string, built from buffers (no per-row work, no compute kernel)."""
    raw = text.encode()
    offsets = np.arange(count + 1, dtype=np.int32) * len(raw)
    return pa.Array.from_buffers(pa.string(), count, [None, pa.py_buffer(offsets), pa.py_buffer(raw * count)])


def _timestamps(nanoseconds: np.ndarray) -> pa.Array:
    """int64 UTC nanoseconds -> the schema's timestamp type, zero-copy."""
    values = np.ascontiguousarray(nanoseconds, np.int64)
    return pa.Array.from_buffers(TIMESTAMP, values.size, [None, pa.py_buffer(values)])


def _column(values: np.ndarray) -> pa.Array:
    """A numeric numpy column as an Arrow array, zero-copy (``pa.array``'s first call imports pandas: 0.2 s)."""
    values = np.ascontiguousarray(values)
    return pa.Array.from_buffers(pa.from_numpy_dtype(values.dtype), values.size, [None, pa.py_buffer(values)])


def _binary16(matrix: np.ndarray) -> pa.Array:
    matrix = np.ascontiguousarray(matrix, np.uint8)
    return pa.Array.from_buffers(FLOW_SCHEMA.field("src_addr").type, matrix.shape[0], [None, pa.py_buffer(matrix)])


def _running_max(values: np.ndarray, new_key: np.ndarray) -> np.ndarray:
    """Maximum of ``values`` so far within each key's run of rows (``new_key`` marks where runs begin).

    Rows within a flow key come sorted by start time, so the end times are already
    non-decreasing unless packets arrived out of time order; only then is a scan needed.
    """
    if not (~new_key[1:] & (values[1:] < values[:-1])).any():
        return values
    group = np.cumsum(new_key)
    result = values.copy()
    shift = 1
    while shift < result.size:
        within = group[shift:] == group[:-shift]
        result[shift:] = np.where(within, np.maximum(result[shift:], result[:-shift]), result[shift:])
        shift *= 2
    return result


def _run_sums(values: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Sums of consecutive runs of ``values`` given each run's last index (runs cover all values).

    Differences of a running sum: a few times faster than ``np.add.reduceat`` with many short
    runs, and exact for unsigned integers (the running sum may wrap; the differences do not).
    """
    totals = np.cumsum(values)[ends]
    return np.diff(totals, prepend=totals.dtype.type(0))


def _split_active(starts: np.ndarray, first: np.ndarray, active_ns: int) -> np.ndarray:
    """Add flow starts where a row begins ``active_ns`` or more after its flow's first row.

    Each round splits every over-long flow at its first late row; the new flow's own
    timer starts there, so rounds repeat until no flow is too long (one round per
    active period a batch spans).
    """
    starts = starts.copy()
    while True:
        flow = np.cumsum(starts) - 1
        flow_start = first[np.flatnonzero(starts)][flow]
        late = np.flatnonzero(~starts & (first - flow_start >= active_ns))
        if late.size == 0:
            return starts
        first_late = np.ones(late.size, bool)
        first_late[1:] = flow[late[1:]] != flow[late[:-1]]
        starts[late[first_late]] = True
