"""The SQL differences between the stores a report runs on: the lake (DuckDB), ClickHouse, PostgreSQL.

A report is written once over a ``flows`` relation with the catalogue's column names (``query/reports``);
a ``Dialect`` supplies what differs: the relation (ClickHouse's ``flows_raw`` has flow-pipeline's names, so
it is renamed back; its times are UInt64 nanoseconds), the literal for a time bound, and the functions the
lake registers as DuckDB macros (``proto_name``). Everything else the reports use (subqueries with an
alias, GROUP BY, ORDER BY, LIMIT, ``sum``, ``count(*)``, ``round``, ``UNION ALL``, scalar subqueries) is
common to the three; window functions are not (ClickHouse 18.16 has none).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flowscope.errors import FlowscopeError
from flowscope.query.filters import time_predicates
from flowscope.query.helpers import proto_name_sql
from flowscope.schema import FLOWS, Role, table_columns

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Dialect:
    name: str
    flows: str
    """A FROM item yielding the flows with the catalogue's column names."""
    number_as_text: str
    """``{}`` -> that integer as text."""
    time_kind: str
    """How times compare: ``iso`` (a timestamp literal) or ``ns`` (integer nanoseconds since 1970)."""
    date_pruning: bool = False
    """The relation has the lake's ``date`` partition column (bounds on it skip whole days unread)."""
    windows: bool = True
    """Window functions (``sum(x) OVER ()``); without them a total is a scalar subquery, a second scan."""

    def time_predicates(self, since: datetime | None, until: datetime | None) -> list[str]:
        if self.date_pruning:
            return time_predicates(since, until)
        bounds = []
        for bound, op in ((since, ">="), (until, "<")):
            if bound is None:
                continue
            if self.time_kind == "ns":
                literal = str((bound - _EPOCH) // timedelta(microseconds=1) * 1_000)
            else:
                literal = f"'{bound.isoformat()}'"
            bounds.append(f"time_flow_start {op} {literal}")
        return bounds

    def round(self, value: str, digits: int) -> str:
        """``value`` rounded as the lake rounds a double (DuckDB: ``round(x * 10^d) / 10^d``); PostgreSQL's
        ``round(numeric, d)`` would round the exact decimal instead (0.145 -> 0.15 where DuckDB gives 0.14)."""
        if self.name == "postgresql":
            scale = 10**digits
            return f"round(CAST({value} AS double precision) * {scale}) / {scale}"
        return f"round({value}, {digits})"

    def proto_name(self, value: str) -> str:
        if self.name == "lake":
            return f"proto_name({value})"
        return proto_name_sql(value, self.number_as_text.format(value))


def _clickhouse_flows() -> str:
    from flowscope.db.clickhouse import RAW_TABLE, raw_columns

    renamed = ", ".join(f"`{c.name}` AS {c.source.name}" for c in raw_columns() if c.source is not None)
    return f"(SELECT {renamed} FROM {RAW_TABLE})"


LAKE = Dialect("lake", "flows", "CAST({} AS VARCHAR)", "iso", date_pruning=True)
POSTGRES = Dialect("postgresql", "flows", "CAST({} AS text)", "iso")


def clickhouse() -> Dialect:
    return Dialect("clickhouse", _clickhouse_flows(), "toString({})", "ns", windows=False)


def dialect_for(source: str) -> Dialect:
    """The dialect of a ``--from`` source: ``lake``, ``clickhouse://...`` or ``postgresql://...``."""
    if source == "lake":
        return LAKE
    if source.startswith("clickhouse://"):
        return clickhouse()
    if source.startswith(("postgresql://", "postgres://")):
        return POSTGRES
    raise FlowscopeError(f"unknown report source {source!r} (lake, clickhouse://HOST:9000/DB or postgresql://...)")


ADDRESS_COLUMNS = frozenset(c.name for c in table_columns(FLOWS) if c.role is Role.ADDRESS) | {"host"}
"""Result columns holding addresses (``host`` is the report's name for either endpoint)."""
