"""The console's queries: SQL built from catalogue names and fixed text, values only as parameters, run with a
time-out and a row limit on a fresh read-only lake connection.

Every statement is assembled here from three things: fixed SQL, column names looked up in the catalogue
(``schema.column``; a request naming anything else is refused before SQL exists) and a compiled filter
(``query.filter_language``: its own keywords and catalogue names, values as ``$`` parameters). Time bounds,
bucket sizes and row counts are parameters too.

A connection is opened per request (``open_lake``: 0.03 s on the 51 files of ``demo --flows 2000000``), so
each answer sees the files published since the last one and a compaction waits only as long as one query.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb
import pyarrow as pa

from flowscope.errors import FlowscopeError
from flowscope.lake.layout import Lake
from flowscope.query import open_lake
from flowscope.query.filter_language import CompiledFilter
from flowscope.schema import FLOWS, Column, Role, column, table_columns

UNITS = {
    "bps": ("scaled(bytes + bytes_rev, sampling_rate) * 8", "bits per second, both directions, sampling applied"),
    "pps": ("scaled(packets + packets_rev, sampling_rate)", "packets per second, both directions, sampling applied"),
    "fps": ("1", "flow records per second"),
}
"""unit -> (the SQL of one flow's contribution, what it means)."""

STEPS_S = (10, 30, 60, 300, 600, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86_400, 7 * 86_400)
"""Bucket sizes a time series may use: the smallest that gives at most the points asked for."""

SEARCH_COLUMNS = (
    "time_flow_start", "time_flow_end", "type", "sampler_address", "src_addr", "src_port", "dst_addr", "dst_port",
    "proto", "bytes", "packets", "bytes_rev", "packets_rev", "tcp_flags", "sampling_rate", "in_if", "out_if",
)  # fmt: skip
"""What flow search shows of each flow."""


class QueryTimeout(FlowscopeError):
    """A query ran longer than the console allows."""


def dimensions() -> tuple[Column, ...]:
    """The flow columns a chart may be split by: identifiers, labels and addresses (not counters or times)."""
    return tuple(c for c in table_columns(FLOWS) if c.role in (Role.DIMENSION, Role.ADDRESS, Role.MAC))


def dimension(name: str) -> Column:
    found = column(name, FLOWS)
    if found is None or found not in dimensions():
        raise FlowscopeError(f"unknown dimension {name!r} (known: {', '.join(c.name for c in dimensions())})")
    return found


def label_sql(col: Column, expression: str) -> str:
    """The text shown for values of ``col`` held in ``expression`` (applied to grouped keys only: few rows)."""
    if col.role is Role.ADDRESS:
        return f"ip_text({expression})"
    if col.role is Role.MAC:
        return f"mac_text({expression})"
    if col.name == "proto":
        return f"proto_name({expression})"
    return f"CAST({expression} AS VARCHAR)"


def step_for(since: datetime, until: datetime, points: int) -> int:
    span = (until - since).total_seconds()
    return next((step for step in STEPS_S if span / step <= points), STEPS_S[-1])


@dataclass(frozen=True)
class Window:
    """A time range and a filter: the condition every console query starts from."""

    since: datetime
    until: datetime
    selected: CompiledFilter

    def where(self, shift_s: int = 0) -> tuple[str, dict[str, Any]]:
        """The condition, optionally for the same span ``shift_s`` seconds earlier (the previous period)."""
        since = self.since.timestamp() - shift_s
        until = self.until.timestamp() - shift_s
        sql = (
            "time_flow_start >= to_timestamp($w_since) AND time_flow_start < to_timestamp($w_until) "
            "AND date >= CAST(to_timestamp($w_since) AS DATE) AND date <= CAST(to_timestamp($w_until) AS DATE) "
            f"AND {self.selected.sql}"
        )
        return sql, {"w_since": since, "w_until": until, **self.selected.params}

    @property
    def seconds(self) -> int:
        return max(1, round((self.until - self.since).total_seconds()))


def timeseries_sql(window: Window, by: Column | None, unit: str, count: int, step_s: int) -> tuple[str, dict]:
    """Rows (bucket, rank, label, value): rank 1..count for the heaviest keys of ``by`` over the whole window,
    0 for "Other"; value is the unit's rate over the bucket. Without ``by``, one series (rank 1, label total)."""
    where, params = window.where()
    value = UNITS[unit][0]
    key = by.name if by else "NULL"
    params |= {"step_ns": step_s * 1_000_000_000, "origin_ns": _origin_ns(window.since, step_s), "n": count}
    params["step_s"] = step_s
    label = label_sql(by, "k") if by else "'total'"
    return (
        f"WITH base AS (SELECT {key} AS k, "
        f"(epoch_ns(time_flow_start) - $origin_ns) // $step_ns AS b, {value} AS v "
        f"FROM flows WHERE {where}), "
        "ranked AS (SELECT k, row_number() OVER (ORDER BY sum(v) DESC, k) AS rank FROM base GROUP BY k "
        "QUALIFY rank <= $n), "
        "grid AS (SELECT b, coalesce(r.rank, 0) AS rank, any_value(r.k) AS k, sum(v) AS v "
        "FROM base LEFT JOIN ranked r ON base.k IS NOT DISTINCT FROM r.k GROUP BY ALL) "
        f"SELECT b, rank, {label} AS label, v / $step_s AS v "
        "FROM grid ORDER BY b, rank",
        params,
    )


def totals_sql(window: Window, unit: str, step_s: int, *, shift_s: int) -> tuple[str, dict]:
    """Rows (bucket, value): the total rate per bucket of the window shifted ``shift_s`` seconds back,
    bucket numbers counted from the shifted start (so bucket i lines up with the current window's i)."""
    where, params = window.where(shift_s)
    params |= {
        "step_ns": step_s * 1_000_000_000,
        "origin_ns": _origin_ns(window.since, step_s) - shift_s * 1_000_000_000,
        "step_s": step_s,
    }
    return (
        "SELECT (epoch_ns(time_flow_start) - $origin_ns) // $step_ns AS b, "
        f"sum({UNITS[unit][0]}) / $step_s AS v FROM flows WHERE {where} GROUP BY b ORDER BY b",
        params,
    )


def _origin_ns(since: datetime, step_s: int) -> int:
    """Buckets start at multiples of the step since the epoch (whole minutes, hours, UTC days); the API widens
    a window to start on one."""
    return int(since.timestamp()) // step_s * step_s * 1_000_000_000


def sankey_sql(window: Window, by: list[Column], unit: str, count: int) -> tuple[str, dict]:
    """Rows (label per dimension..., value): the ``count`` heaviest paths through the dimensions, as an
    average rate over the window."""
    where, params = window.where()
    keys = ", ".join(f"{c.name} AS k{i}" for i, c in enumerate(by))
    labels = ", ".join(f"coalesce({label_sql(c, f'k{i}')}, '(none)') AS d{i}" for i, c in enumerate(by))
    params |= {"n": count, "span_s": window.seconds}
    return (
        f"WITH paths AS (SELECT {keys}, sum({UNITS[unit][0]}) AS v FROM flows WHERE {where} "
        f"GROUP BY ALL ORDER BY v DESC LIMIT $n) SELECT {labels}, v / $span_s AS v FROM paths ORDER BY v DESC",
        params,
    )


def flows_sql(window: Window, limit: int, offset: int) -> tuple[str, dict]:
    """The newest flows of the window first, one page (``limit`` + 1 rows, so the caller sees whether more follow).

    The page's oldest start time is found first from that one column; the full rows are then read only from
    there on. On the 2 M flows of ``demo --flows 2000000`` (best of 5): 585 -> 275 ms for the first page,
    830 -> 200 ms at offset 100,000, against sorting every column of every flow in the window.
    """
    where, params = window.where()
    shown = ", ".join("proto_name(proto) AS proto" if c == "proto" else c for c in SEARCH_COLUMNS)
    params |= {"page_rows": limit + 1, "page_offset": offset, "page_end": offset + limit + 1}
    return (
        "WITH cutoff AS (SELECT min(t) AS t FROM (SELECT time_flow_start AS t FROM flows "
        f"WHERE {where} ORDER BY t DESC LIMIT $page_end)) "
        f"SELECT {shown} FROM flows WHERE {where} AND time_flow_start >= (SELECT t FROM cutoff) "
        "ORDER BY time_flow_start DESC, src_addr, dst_addr LIMIT $page_rows OFFSET $page_offset",
        params,
    )


@dataclass(frozen=True)
class LakeQueries:
    """Runs the console's statements on ``lake``: each on its own connection, interrupted after ``timeout_s``
    seconds (DuckDB has no statement time-out; ``interrupt()`` from a timer thread cancels it), its result
    cut at ``max_rows`` rows."""

    lake: Lake
    timeout_s: float = 10.0
    max_rows: int = 100_000
    threads: int | None = None

    def run(self, sql: str, params: dict[str, Any]) -> pa.Table:
        with open_lake(self.lake, threads=self.threads) as con:
            timer = threading.Timer(self.timeout_s, con.interrupt)
            timer.start()
            try:
                return con.sql(sql, params=params).limit(self.max_rows).to_arrow_table()
            except duckdb.InterruptException:
                raise QueryTimeout(f"the query ran longer than {self.timeout_s:g} s; narrow the time range") from None
            finally:
                timer.cancel()
