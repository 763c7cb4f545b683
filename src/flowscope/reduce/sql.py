"""A reduction as one DuckDB aggregate query, shared by ingest batches, compaction and query views."""

from __future__ import annotations

from collections.abc import Sequence

from flowscope.errors import FlowscopeError
from flowscope.reduce.spec import DURATION, Reduction

_INTEGER_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT")
_DURATION_COLUMN = "__duration_ns"


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _aggregate(strategy: str, column: str, duck_type: str, order: str) -> str:
    col = quote(column)
    if strategy == "sum":
        return f"sum({col})::{duck_type}"
    if strategy in ("min", "max"):
        return f"{strategy}({col})"
    if strategy == "first":
        return f"arg_min_null({col}, {order})"
    if strategy == "last":
        return f"arg_max_null({col}, {order})"
    if duck_type in _INTEGER_TYPES:  # merge
        return f"bit_or({col})"
    return f"arg_max({col}, {order}) FILTER (WHERE {col} IS NOT NULL)"


def reduce_sql(reduction: Reduction, relation: str, columns: Sequence[tuple[str, str]], order: str) -> str:
    """Aggregate ``relation`` (whose output columns and DuckDB types are ``columns``) by the reduction's key.

    ``order`` names a BIGINT column of ``relation`` giving record order, which ``first``
    and ``last`` follow (callers number records by start time, then arrival). Output
    columns keep the input's names, order and types.
    """
    names = [name for name, _ in columns]
    missing = [k for k in reduction.key if k not in names]
    if missing:
        raise FlowscopeError(f"reduction {reduction.name!r}: key field(s) {missing} not in the data")
    unknown = [f for f in reduction.fields if f not in names and f != DURATION]
    if unknown:
        raise FlowscopeError(f"reduction {reduction.name!r}: unknown field(s) {unknown}")
    order = quote(order)
    with_duration = DURATION in reduction.fields and "time_flow_start" in names and "time_flow_end" in names
    inner = [quote(k) for k in reduction.key]
    outer = []
    for name, duck_type in columns:
        if name in reduction.key:
            outer.append(quote(name))
            continue
        if with_duration and name == "time_flow_end":
            outer.append(
                f"timezone('UTC', make_timestamp_ns(epoch_ns(time_flow_start) + {_DURATION_COLUMN})) AS time_flow_end"
            )
            continue
        inner.append(f"{_aggregate(reduction.strategy(name), name, duck_type, order)} AS {quote(name)}")
        outer.append(quote(name))
    if with_duration:
        duration = "(epoch_ns(time_flow_end) - epoch_ns(time_flow_start))"
        strategy = reduction.fields[DURATION]
        expression = {
            "sum": f"sum({duration})",
            "min": f"min({duration})",
            "max": f"max({duration})",
            "first": f"arg_min_null({duration}, {order})",
            "last": f"arg_max_null({duration}, {order})",
            "merge": f"arg_max({duration}, {order})",
        }[strategy]
        inner.append(f"{expression}::BIGINT AS {_DURATION_COLUMN}")
    group = ", ".join(quote(k) for k in reduction.key)
    return f"SELECT {', '.join(outer)} FROM (SELECT {', '.join(inner)} FROM {relation} GROUP BY {group}) AS reduced"
