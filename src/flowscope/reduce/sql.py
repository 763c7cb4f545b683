"""A reduction as one DuckDB aggregate query: the query views (batches are reduced by ``apply``, with the same
semantics, which tests/reduce checks against this SQL)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from flowscope.reduce.spec import DURATION, Reduction

_INTEGER_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT")
DURATION_COLUMN = "__duration_ns"
_NO_START = -9223372036854775807
"""The start time (ns) a record without one sorts by: before every other."""
_ROW_LIMIT = 1 << 32
"""File and row numbers each take 32 bits of the record order's lower half."""


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def record_order(file: str, row: str) -> str:
    """A record's place in record order as one HUGEINT: its start time in ns (null first) times 2**64, plus its
    ``file`` number times 2**32, plus its ``row`` number (columns of the relation).

    One integer is what every group's ``max`` and ``min`` compare: a struct (time, file, row) took DuckDB's
    generic path, 0.4-0.6 of the 3.3 CPU s the ``pairs`` view cost over 2.8 M records (1.0 M pairs, 2
    threads). A file or row number from 2**32 on is an error, never a wrong order.
    """
    start = f"coalesce(epoch_ns(time_flow_start), {_NO_START})::HUGEINT * {1 << 64}"
    file, row = quote(file), quote(row)
    place = f"{file}::HUGEINT * {_ROW_LIMIT} + {row}"
    limit = f"'a record order needs file and row numbers below {_ROW_LIMIT}'"
    return f"({start} + CASE WHEN {file} < {_ROW_LIMIT} AND {row} < {_ROW_LIMIT} THEN {place} ELSE error({limit}) END)"


def _aggregate(strategy: str, column: str, duck_type: str, order: str) -> str:
    """The aggregate for sum/min/max/merge; first and last are picked by row instead (see ``reduce_sql``)."""
    col = quote(column)
    if strategy == "sum":
        return f"sum({col})::{duck_type}"
    if strategy in ("min", "max"):
        return f"{strategy}({col})"
    if duck_type in _INTEGER_TYPES:  # merge
        return f"bit_or({col})"
    return f"arg_max({col}, {order}) FILTER (WHERE {col} IS NOT NULL)"


@dataclass(frozen=True)
class _Plan:
    """A reduction split in two: one GROUP BY, then per output column where its value comes from."""

    group_sql: str
    """Key columns, aggregated columns, ``__first`` / ``__last`` (record numbers), optional duration."""
    sources: dict[str, str]
    """Output column -> ``group``, ``first``, ``last`` or ``duration`` (end = start + reduced duration)."""


def _plan(reduction: Reduction, relation: str, columns: Sequence[tuple[str, str]], order: str) -> _Plan:
    """Plan reducing ``relation`` (output columns and DuckDB types ``columns``) by the reduction's key.

    ``order`` is ``record_order`` over ``relation``: unique per record, it sorts records the way
    ``first`` and ``last`` follow (start time, then arrival). Each group's minimum and maximum
    ``order`` are aggregated once (``__first``, ``__last``); first/last fields are then taken
    from those two records, much cheaper than one ``arg_max`` per field.
    """
    names = [name for name, _ in columns]
    reduction.check(names)
    with_duration = reduction.reduces_duration(names)
    aggregated = [quote(k) for k in reduction.key] + [f"max({order}) AS __last", f"min({order}) AS __first"]
    sources: dict[str, str] = {}
    for name, duck_type in columns:
        strategy = reduction.strategy(name)
        if name in reduction.key:
            sources[name] = "group"
        elif with_duration and name == "time_flow_end":
            sources[name] = "duration"
        elif strategy in ("first", "last"):
            sources[name] = strategy
        else:
            aggregated.append(f"{_aggregate(strategy, name, duck_type, order)} AS {quote(name)}")
            sources[name] = "group"
    if with_duration:
        duration = "(epoch_ns(time_flow_end) - epoch_ns(time_flow_start))"
        expression = {
            "sum": f"sum({duration})",
            "min": f"min({duration})",
            "max": f"max({duration})",
            "first": f"arg_min({duration}, {order})",
            "last": f"arg_max({duration}, {order})",
            "merge": f"arg_max({duration}, {order})",
        }[reduction.fields[DURATION]]
        aggregated.append(f"{expression}::BIGINT AS {DURATION_COLUMN}")
    group = ", ".join(quote(k) for k in reduction.key)
    return _Plan(f"SELECT {', '.join(aggregated)} FROM {relation} GROUP BY {group}", sources)


def reduce_sql(reduction: Reduction, relation: str, columns: Sequence[tuple[str, str]], file: str, row: str) -> str:
    """The whole reduction as one query (for views): the GROUP BY joined back to the first and last records.

    ``relation`` must be repeatable (a table or a parenthesised subquery): it is scanned once
    to group and once per joined record. Its columns ``file`` and ``row`` (numbers below 2**32)
    identify a record and, after its start time, give its place in record order (``record_order``).
    """
    steps = _plan(reduction, relation, columns, record_order(file, row))
    alias = {"group": "g", "first": "f", "last": "l"}
    start = f"{alias[steps.sources['time_flow_start']]}.time_flow_start" if "time_flow_start" in steps.sources else ""
    outer = []
    for name, source in steps.sources.items():
        if source == "duration":
            expression = f"timezone('UTC', make_timestamp_ns(epoch_ns({start}) + g.{DURATION_COLUMN}))"
        else:
            expression = f"{alias[source]}.{quote(name)}"
        outer.append(f"{expression} AS {quote(name)}")
    picked = {alias[s] for s in steps.sources.values() if s in ("first", "last")}
    if any(s == "duration" for s in steps.sources.values()):
        picked.add(start.split(".")[0])
    joins = [
        f"JOIN {relation} AS {a} ON {a}.{quote(file)} = (g.__{which} >> 32) & {_ROW_LIMIT - 1} "
        f"AND {a}.{quote(row)} = g.__{which} & {_ROW_LIMIT - 1}"
        for a, which in (("f", "first"), ("l", "last"))
        if a in picked
    ]
    return f"WITH g AS ({steps.group_sql}) SELECT {', '.join(outer)} FROM g {' '.join(joins)}"
