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
) -> str:
    """SQL for the top ``count`` keys of ``grouping`` by ``metric`` (flows: records; bytes/packets: both
    directions, scaled by the sampling rate where it is known).

    ``table`` is ``flows`` or a roll-up (``flowscope.transforms.rollups``), whose rows are groups of flows:
    their ``flows`` column counts the records and their counters are already scaled, so both give the same
    answer.
    """
    if grouping not in GROUPINGS:
        raise FlowscopeError(f"unknown grouping {grouping!r}")
    if metric not in METRICS:
        raise FlowscopeError(f"unknown metric {metric!r}")
    rollup = table != "flows"
    time_column = "time" if rollup else "time_flow_start"
    predicates = time_predicates(since, until, time_column) + ([f"({where})"] if where else [])
    condition = " AND ".join(predicates) or "TRUE"

    def total(forward: str, reverse: str) -> str:
        if rollup:
            return f"coalesce({forward}, 0) + coalesce({reverse}, 0)"
        return f"coalesce(scaled({forward}, sampling_rate), 0) + coalesce(scaled({reverse}, sampling_rate), 0)"

    volume = (
        f"SELECT *, {total('bytes', 'bytes_rev')} AS total_bytes, {total('packets', 'packets_rev')} AS total_packets, "
        f"{'flows' if rollup else '1'} AS records FROM {table}"
    )
    if grouping == "host":
        source = (
            f"SELECT src_addr AS host, total_bytes, total_packets, records FROM ({volume}) WHERE {condition} "
            f"UNION ALL SELECT dst_addr, total_bytes, total_packets, records FROM ({volume}) WHERE {condition}"
        )
        condition = "TRUE"
    else:
        source = volume
    keys = ", ".join(GROUPINGS[grouping])
    shown = ", ".join("proto_name(proto) AS protocol" if key == "proto" else key for key in GROUPINGS[grouping])
    measure = {"bytes": "sum(total_bytes)", "packets": "sum(total_packets)", "flows": "sum(records)"}[metric]
    return (
        f"SELECT {shown}, sum(records)::BIGINT AS flows, sum(total_packets) AS packets, sum(total_bytes) AS bytes, "
        f"round(100.0 * {measure} / sum({measure}) OVER (), 2) AS share_pct "
        f"FROM ({source}) WHERE {condition} GROUP BY {keys} ORDER BY {measure} DESC, {keys} LIMIT {int(count)}"
    )
