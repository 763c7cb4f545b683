"""Top-N by a key: talkers, conversations, services, protocols, ASes."""

from __future__ import annotations

from datetime import datetime

from flowscope.errors import FlowscopeError
from flowscope.query.dialects import LAKE, Dialect

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


def top_sql(
    grouping: str,
    metric: str,
    count: int,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    where: str | None = None,
    dialect: Dialect = LAKE,
) -> str:
    """SQL for the top ``count`` keys of ``grouping`` by ``metric`` (flows: records; bytes/packets: both directions),
    rendered for ``dialect``'s store."""
    if grouping not in GROUPINGS:
        raise FlowscopeError(f"unknown grouping {grouping!r}")
    if metric not in METRICS:
        raise FlowscopeError(f"unknown metric {metric!r}")
    predicates = dialect.time_predicates(since, until) + ([f"({where})"] if where else [])
    condition = " AND ".join(predicates) or "1 = 1"
    volume = (
        "SELECT *, bytes + bytes_rev AS total_bytes, packets + packets_rev AS total_packets "
        f"FROM {dialect.flows} AS f"
    )
    if grouping == "host":
        source = (
            f"SELECT src_addr AS host, total_bytes, total_packets FROM ({volume}) AS v WHERE {condition} "
            f"UNION ALL SELECT dst_addr, total_bytes, total_packets FROM ({volume}) AS v WHERE {condition}"
        )
        condition = "1 = 1"
    else:
        source = volume
    keys = ", ".join(GROUPINGS[grouping])
    shown = ", ".join(
        f"{dialect.proto_name('proto')} AS protocol" if key == "proto" else key for key in GROUPINGS[grouping]
    )
    measure = {"bytes": "sum(total_bytes)", "packets": "sum(total_packets)", "flows": "count(*)"}[metric]
    total = f"sum({measure}) OVER ()"
    if not dialect.windows:
        total = f"(SELECT {measure} FROM ({source}) AS s WHERE {condition})"
    return (
        f"SELECT {shown}, count(*) AS flows, sum(total_packets) AS packets, sum(total_bytes) AS bytes, "
        f"{dialect.round(f'100.0 * {measure} / {total}', 2)} AS share_pct "
        f"FROM ({source}) AS s WHERE {condition} GROUP BY {keys} ORDER BY {measure} DESC, {keys} LIMIT {int(count)}"
    )
