"""The SQL differences between the stores a report runs on: the lake (DuckDB), ClickHouse, PostgreSQL.

A report is written once over a ``flows`` relation with the catalogue's column names (``query/reports``);
a ``Dialect`` supplies what differs: the relation (ClickHouse's ``flows_raw`` has flow-pipeline's names, so
it is renamed back; its times are UInt64 nanoseconds), the literal for a time bound, and the functions the
lake registers as DuckDB macros (``proto_name``). Everything else the reports use (subqueries with an
alias, GROUP BY, ORDER BY, LIMIT, ``sum``, ``count(*)``, ``round``, ``UNION ALL``, scalar subqueries) is
common to the three; window functions are not (ClickHouse 18.16 has none).

Values a user typed reach every store as parameters (``bind``): DuckDB's ``$name``, psycopg's and
clickhouse-driver's ``%(name)s``. clickhouse-driver substitutes them on the client, escaped, because
18.16 has no server-side parameters; a value is always a quoted string or a number there, and addresses
travel as hex text (``unhex``), so no typed byte becomes SQL. Each store gets the value in its own type:
addresses as the 16-byte form (lake), FixedString(16) (ClickHouse) or ``inet`` (PostgreSQL, IPv4-mapped
addresses as IPv4, as the sink stores them); times as timestamps or ClickHouse's UInt64 nanoseconds; MACs
as integers or PostgreSQL ``macaddr``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from flowscope import addresses
from flowscope.db.urls import shown_url
from flowscope.errors import FlowscopeError
from flowscope.query.filters import time_predicates
from flowscope.query.helpers import proto_name_sql
from flowscope.schema import FLOWS, Role, table_columns

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAPPED = bytes(10) + b"\xff\xff"
"""The first 12 bytes of every IPv4-mapped address."""


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
    placeholder: str = "${}"
    """``{}`` -> the reference to the parameter of that name."""

    def bind(self, params: dict[str, Any], name: str, role: Role | None, value: Any) -> str:
        """Store ``value`` (as the lake holds it: 16-byte address, timestamp, integer MAC, ...) compared with a
        column of ``role`` as parameter ``name`` in ``params``; returns the SQL that refers to it."""
        ref = self.placeholder.format(name)
        if value is None:
            params[name] = None
            return ref
        if role is Role.ADDRESS and self.name == "clickhouse":
            params[name] = bytes(value).hex()
            return f"unhex({ref})"
        if role is Role.ADDRESS and self.name == "postgresql":
            params[name] = addresses.format_one(bytes(value))
            return f"CAST({ref} AS inet)"
        if role is Role.TIME and self.time_kind == "ns":
            params[name] = (value - _EPOCH) // timedelta(microseconds=1) * 1_000
            return ref
        if role is Role.MAC and self.name == "postgresql":
            params[name] = ":".join(f"{value:012x}"[i : i + 2] for i in range(0, 12, 2))
            return f"CAST({ref} AS macaddr)"
        params[name] = value
        return ref

    def address_range(self, params: dict[str, Any], name: str, expression: str, low: bytes, high: bytes) -> str:
        """``expression`` (an address column) within [low, high], both 16-byte addresses of one prefix.

        A byte-range test on the lake and ClickHouse (their addresses are the 16-byte form, IPv4 mapped into
        ::ffff:0:0/96). PostgreSQL keeps IPv4 addresses as IPv4 ``inet``, which sorts before every IPv6 one,
        so a prefix that holds the mapped range (``::/0``, ``::/80``) also takes every IPv4 address there.
        """
        if self.name != "postgresql" or low[:12] == _MAPPED or not low[:12] <= _MAPPED <= high[:12]:
            lo = self.bind(params, f"{name}l", Role.ADDRESS, low)
            hi = self.bind(params, f"{name}h", Role.ADDRESS, high)
            return f"({expression} BETWEEN {lo} AND {hi})"
        # the IPv6 part as IPv6 text (PostgreSQL keeps ::ffff:a.b.c.d typed as IPv6), then IPv4 as a whole
        params[f"{name}l"], params[f"{name}h"] = (ipaddress.IPv6Address(bound).compressed for bound in (low, high))
        lo, hi = (f"CAST({self.placeholder.format(f'{name}{end}')} AS inet)" for end in "lh")
        return f"({expression} BETWEEN {lo} AND {hi} OR family({expression}) = 4)"

    def time_predicates(
        self, since: datetime | None, until: datetime | None, column: str = "time_flow_start"
    ) -> list[str]:
        """[since, until) on ``column`` as literals (datetimes, never user text); on the lake also on ``date``."""
        if self.date_pruning:
            return time_predicates(since, until, column)
        bounds = []
        for bound, op in ((since, ">="), (until, "<")):
            if bound is None:
                continue
            if self.time_kind == "ns":
                literal = str((bound - _EPOCH) // timedelta(microseconds=1) * 1_000)
            else:
                literal = f"'{bound.isoformat()}'"
            bounds.append(f"{column} {op} {literal}")
        return bounds

    def round(self, value: str, digits: int) -> str:
        """``value`` rounded as the lake rounds a double (DuckDB: ``round(x * 10^d) / 10^d``); PostgreSQL's
        ``round(numeric, d)`` would round the exact decimal instead (0.145 -> 0.15 where DuckDB gives 0.14),
        and its ``round(double)`` rounds halves to even (6.5 -> 6 where DuckDB gives 7); values are >= 0."""
        if self.name == "postgresql":
            scale = 10**digits
            return f"floor(CAST({value} AS double precision) * {scale} + 0.5) / {scale}"
        return f"round({value}, {digits})"

    def rollup_relation(self, table: str) -> str:
        """The FROM item of roll-up ``table`` (a lake roll-up's name; other stores keep it under another)."""
        if self.name == "lake":
            return table
        from flowscope.transforms.rollups.stores import store_table

        return store_table(table)

    def epoch_ns(self, value: str) -> str:
        """A time as integer nanoseconds since 1970."""
        if self.name == "lake":
            return f"epoch_ns({value})"
        if self.time_kind == "ns":
            return value
        return f"(CAST(extract(epoch FROM {value}) * 1000000 AS bigint) * 1000)"

    def int_div(self, dividend: str, divisor: str) -> str:
        """Integer division (of non-negative integers)."""
        if self.name == "clickhouse":
            return f"intDiv({dividend}, {divisor})"
        return f"({dividend}) {'//' if self.name == 'lake' else '/'} ({divisor})"

    def proto_name(self, value: str) -> str:
        if self.name == "lake":
            return f"proto_name({value})"
        return proto_name_sql(value, self.number_as_text.format(value))


def _clickhouse_flows() -> str:
    from flowscope.db.clickhouse import RAW_TABLE, raw_columns

    renamed = ", ".join(f"`{c.name}` AS {c.source.name}" for c in raw_columns() if c.source is not None)
    return f"(SELECT {renamed} FROM {RAW_TABLE})"


LAKE = Dialect("lake", "flows", "CAST({} AS VARCHAR)", "iso", date_pruning=True)
POSTGRES = Dialect("postgresql", "flows", "CAST({} AS text)", "iso", placeholder="%({})s")


def clickhouse() -> Dialect:
    return Dialect("clickhouse", _clickhouse_flows(), "toString({})", "ns", windows=False, placeholder="%({})s")


def dialect_for(source: str) -> Dialect:
    """The dialect of a ``--from`` source: ``lake``, ``clickhouse://...`` or ``postgresql://...``."""
    if source == "lake":
        return LAKE
    if source.startswith("clickhouse://"):
        return clickhouse()
    if source.startswith(("postgresql://", "postgres://")):
        return POSTGRES
    raise FlowscopeError(
        f"unknown report source {shown_url(source)!r} (lake, clickhouse://HOST:9000/DB or postgresql://...)"
    )


ADDRESS_COLUMNS = frozenset(c.name for c in table_columns(FLOWS) if c.role is Role.ADDRESS) | {"host"}
"""Result columns holding addresses (``host`` is the report's name for either endpoint)."""
