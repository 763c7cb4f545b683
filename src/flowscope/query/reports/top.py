"""Top-N by a key: talkers, conversations, services, protocols, ASes."""

from __future__ import annotations

from datetime import datetime

from flowscope.errors import FlowscopeError
from flowscope.query.filters import time_predicates

# grouping -> key columns (as SQL expressions over ``flows``)
GROUPINGS: dict[str, tuple[str, ...]] = {
    "src": ("src_addr",),
    "dst": ("dst_addr",),
    "host": ("host",),
    "pair": ("src_addr", "dst_addr"),
    "port": ("proto", "dst_port"),
    "src-port": ("proto", "src_port"),
    "proto": ("proto",),
    "src-as": ("src_as",),
    "dst-as": ("dst_as",),
}
METRICS = ("bytes", "packets", "flows")
GROUPING_COLUMNS: dict[str, tuple[str, ...]] = {**GROUPINGS, "host": ("src_addr", "dst_addr")}
"""The flow columns each grouping reads (a roll-up must hold them to answer it)."""


def top_sql(
    grouping: str,
    metric: str,
    count: int,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    where: str | None = None,
    table: str = "flows",
    covers: tuple[datetime | None, datetime | None] = (None, None),
) -> str:
    """SQL for the top ``count`` keys of ``grouping`` by ``metric`` (flows: records; bytes/packets: both
    directions, scaled by the sampling rate where it is known).

    ``table`` is ``flows`` or a roll-up (``flowscope.transforms.rollups``) that answers for the part
    ``covers`` of [since, until) (its whole buckets; None: unbounded); the raw flows answer for the slivers
    before and after it. Roll-up rows are groups of flows: their ``flows`` column counts the records and
    their counters are already scaled, so the answer is the raw flows' one.
    """
    if grouping not in GROUPINGS:
        raise FlowscopeError(f"unknown grouping {grouping!r}")
    if metric not in METRICS:
        raise FlowscopeError(f"unknown metric {metric!r}")
    if table == "flows":
        parts = [_part("flows", since, until, where)]
    else:
        first, last = covers
        parts = [_part(table, first, last, None)]
        if since is not None and (first is None or since < first):
            parts.append(_part("flows", since, first, None))
        if until is not None and (last is None or last < until):
            parts.append(_part("flows", last, until, None))
    measures = "total_bytes, total_packets, records"
    if grouping == "host":
        sides = ("src_addr", "dst_addr")
        selects = [f"SELECT {side} AS host, {measures} FROM {part}" for part in parts for side in sides]
    else:
        selects = [f"SELECT {', '.join(GROUPINGS[grouping])}, {measures} FROM {part}" for part in parts]
    source = " UNION ALL ".join(selects)
    keys = ", ".join(GROUPINGS[grouping])
    shown = ", ".join("proto_name(proto) AS protocol" if key == "proto" else key for key in GROUPINGS[grouping])
    measure = {"bytes": "sum(total_bytes)", "packets": "sum(total_packets)", "flows": "sum(records)"}[metric]
    return (
        f"SELECT {shown}, sum(records)::BIGINT AS flows, sum(total_packets) AS packets, sum(total_bytes) AS bytes, "
        f"round(100.0 * {measure} / sum({measure}) OVER (), 2) AS share_pct "
        f"FROM ({source}) GROUP BY {keys} ORDER BY {measure} DESC, {keys} LIMIT {int(count)}"
    )


def _part(table: str, since: datetime | None, until: datetime | None, where: str | None) -> str:
    """``(SELECT *, total_bytes, total_packets, records FROM table) WHERE time in [since, until) [AND where]``."""
    rollup = table != "flows"

    def total(forward: str, reverse: str) -> str:
        if rollup:
            return f"coalesce({forward}, 0) + coalesce({reverse}, 0)"
        return f"coalesce(scaled({forward}, sampling_rate), 0) + coalesce(scaled({reverse}, sampling_rate), 0)"

    volume = (
        f"SELECT *, {total('bytes', 'bytes_rev')} AS total_bytes, {total('packets', 'packets_rev')} AS total_packets, "
        f"{'flows' if rollup else '1'} AS records FROM {table}"
    )
    predicates = time_predicates(since, until, "time" if rollup else "time_flow_start")
    predicates += [f"({where})"] if where else []
    return f"({volume}) WHERE {' AND '.join(predicates) or 'TRUE'}"
