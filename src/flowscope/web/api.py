"""The JSON API under ``/api``: everything the console's pages show comes from here (OpenAPI at /openapi.json).

Requests carry a time window (``since``, ``until``: ISO 8601, epoch seconds or a span ago such as ``6h``;
``until`` defaults to now) and a ``filter`` in the filter language (docs/FILTERS.md). Errors are JSON
``{"detail": ...}``: 400 for a bad request (a filter error adds ``position``), 504 for a query that ran too
long.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from itertools import pairwise
from typing import Annotated, Any

import pyarrow as pa
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from flowscope.collect.server import lake_health
from flowscope.display import textual
from flowscope.errors import FlowscopeError
from flowscope.query.filter_language import compile_filter
from flowscope.query.reports.top import GROUPING_COLUMNS, GROUPINGS, METRICS, top_sql
from flowscope.query.store import TableSummary, table_summaries
from flowscope.times import parse_time
from flowscope.web.queries import (
    UNITS,
    Queries,
    Window,
    dimension,
    dimensions,
    flows_sql,
    labels,
    sankey_sql,
    series_keys_sql,
    series_sql,
    source_for,
    step_for,
)


class Problem(BaseModel):
    """What every error answers: one line, and for a filter error the 0-based offset of the mistake."""

    detail: str
    position: int | None = None


router = APIRouter(
    prefix="/api",
    responses={
        400: {"model": Problem, "description": "a bad request: time range, filter (with position), name"},
        401: {"model": Problem, "description": "the server requires a token"},
        504: {"model": Problem, "description": "the query ran longer than the server allows"},
    },
)

# Names a request may use, as enums so the OpenAPI document lists them.
DimensionName = StrEnum("DimensionName", [c.name for c in dimensions()])  # type: ignore[misc]
Grouping = StrEnum("Grouping", sorted(GROUPINGS))  # type: ignore[misc]
UnitName = StrEnum("UnitName", list(UNITS))  # type: ignore[misc]
Metric = StrEnum("Metric", list(METRICS))  # type: ignore[misc]
Unit = Annotated[UnitName, Query(description="bps, pps or fps (flows per second)")]
BPS, SOURCES, BYTES = UnitName("bps"), Grouping("src"), Metric("bytes")


def queries(request: Request) -> Queries:
    """The app's ``Queries`` (``create_app`` puts it in the app state)."""
    bound: Queries = request.app.state.queries
    return bound


def window(
    request: Request,
    since: Annotated[str, Query(description="start: ISO 8601, epoch seconds, or a span ago (6h, 2d)")] = "24h",
    until: Annotated[str | None, Query(description="end (exclusive); default now")] = None,
    filter: Annotated[str, Query(description="filter language, e.g. proto = tcp and dst_port = 443")] = "",
) -> Window:
    now = datetime.now(UTC)
    start = parse_time(since, now=now)
    if _SPAN.fullmatch(since.strip()):  # "3d" ago to the whole minute, where the 1-minute roll-up starts
        start = start.replace(second=0, microsecond=0)
    end = parse_time(until, now=now) if until else now
    if not start < end:
        raise FlowscopeError(f"the time range is empty: {start.isoformat()} is not before {end.isoformat()}")
    if end - start > timedelta(days=3660):
        raise FlowscopeError("the time range is longer than ten years")
    return Window(start, end, compile_filter(filter, dialect=queries(request).dialect))


_SPAN = re.compile(r"\d+(\.\d+)?\s*[a-z]+", re.IGNORECASE)
"""A ``since`` given as a span ago (``6h``, ``3d``)."""

Lakes = Annotated[Queries, Depends(queries)]
Windows = Annotated[Window, Depends(window)]


class Dimension(BaseModel):
    name: str
    role: str
    unit: str
    meaning: str


class Catalogue(BaseModel):
    dimensions: list[Dimension]
    units: dict[str, str]
    top_groupings: list[str]
    top_metrics: list[str]


class Series(BaseModel):
    name: str
    values: list[float]


class TimeSeries(BaseModel):
    unit: str
    step_seconds: int
    times: list[str]
    series: list[Series]
    previous: list[float] | None


class Rows(BaseModel):
    columns: list[str]
    rows: list[list[Any]]
    more: bool = False


class SankeyNode(BaseModel):
    name: str
    dimension: str


class SankeyLink(BaseModel):
    source: int
    target: int
    value: float


class Sankey(BaseModel):
    unit: str
    dimensions: list[str]
    nodes: list[SankeyNode]
    links: list[SankeyLink]


class Store(BaseModel):
    lake: str
    tables: list[TableSummary]
    first_flow: str | None
    last_flow: str | None


def _rows(table: pa.Table, limit: int | None = None) -> Rows:
    """A result as JSON rows: addresses, MACs and times as text (``display.textual``, as the CLI shows them),
    sums (DuckDB's HUGEINT, a 38-digit decimal in Arrow) as integers."""
    more = limit is not None and table.num_rows > limit
    shown = textual(table.slice(0, limit) if limit is not None else table)
    for index, field in enumerate(shown.schema):
        if pa.types.is_decimal(field.type) and field.type.scale == 0:
            shown = shown.set_column(index, field.name, shown.column(index).cast(pa.int64()))
    return Rows(columns=shown.column_names, rows=[list(r.values()) for r in shown.to_pylist()], more=more)


@router.get("/dimensions", response_model=Catalogue)
def catalogue() -> Catalogue:
    """What charts can be split by, the rate units, and the groupings and metrics of the top-N table."""
    return Catalogue(
        dimensions=[Dimension(name=c.name, role=c.role.value, unit=c.unit, meaning=c.meaning) for c in dimensions()],
        units={unit: meaning for unit, (_, meaning) in UNITS.items()},
        top_groupings=sorted(GROUPINGS),
        top_metrics=list(METRICS),
    )


@router.get("/timeseries", response_model=TimeSeries)
def timeseries(
    lake: Lakes,
    selected: Windows,
    by: Annotated[DimensionName | None, Query(description="a dimension (see /api/dimensions); none: the total")] = None,
    unit: Unit = BPS,
    count: Annotated[int, Query(ge=1, le=50, description="series shown; the rest is 'Other'")] = 10,
    points: Annotated[int, Query(ge=10, le=2000, description="at most this many buckets")] = 200,
    previous: Annotated[bool, Query(description="also the total of the period before")] = False,
) -> TimeSeries:
    """Traffic over time: the rate per bucket of the top ``count`` values of ``by`` plus "Other".

    Buckets are whole multiples of the step since the epoch; the window is widened back to the start of its
    first bucket, so that bucket holds all its traffic instead of showing a false dip."""
    split = dimension(by.value) if by else None
    step = step_for(selected.since, selected.until, points)
    origin = int(selected.since.timestamp()) // step * step
    selected = Window(datetime.fromtimestamp(origin, UTC), selected.until, selected.selected)
    buckets = -(-(int(selected.until.timestamp()) - origin) // step)
    source = source_for(lake, selected, [split.name] if split else [], step)
    keys: list[Any] = []
    names: dict[int, str] = {1: "total"}
    if split is not None:
        top_keys = lake.run(
            series_keys_sql(selected, split, unit.value, count, lake.dialect, source), selected.selected.params
        )
        keys = top_keys.column(split.name).to_pylist()
        shown = labels(top_keys.select([split.name])).column(0).to_pylist()
        names = {rank: "(none)" if label is None else label for rank, label in enumerate(shown, 1)}
    names[0] = "Other"
    values: dict[int, list[float]] = {}
    for row in lake.run(
        *series_sql(selected, split, keys, unit.value, step, lake.dialect, source, origin_s=origin)
    ).to_pylist():
        if 0 <= row["b"] < buckets:
            values.setdefault(row["rank"], [0.0] * buckets)[row["b"]] = float(row["rate"])
    earlier = None
    if previous:
        earlier = [0.0] * buckets
        shifted = selected.shifted(selected.seconds)
        before = source_for(lake, shifted, [], step)
        sql, params = series_sql(
            shifted, None, [], unit.value, step, lake.dialect, before, origin_s=origin - selected.seconds
        )
        for row in lake.run(sql, params).to_pylist():
            if 0 <= row["b"] < buckets:
                earlier[row["b"]] = float(row["rate"])
    order = sorted(values, key=lambda rank: rank or len(values) + 1)  # Other last
    return TimeSeries(
        unit=unit.value,
        step_seconds=step,
        times=[datetime.fromtimestamp(origin + i * step, UTC).strftime("%Y-%m-%dT%H:%M:%SZ") for i in range(buckets)],
        series=[Series(name=names[rank], values=values[rank]) for rank in order],
        previous=earlier,
    )


@router.get("/top", response_model=Rows)
def top(
    lake: Lakes,
    selected: Windows,
    by: Grouping = SOURCES,
    metric: Metric = BYTES,
    count: Annotated[int, Query(ge=1, le=1000)] = 10,
) -> Rows:
    """The top-N table: exactly ``flowscope top --by BY --metric METRIC -n COUNT --since --until --filter``
    (from the same table: a roll-up when the filter is empty and one holds the grouping's columns)."""
    source = source_for(lake, selected, list(GROUPING_COLUMNS[by.value]), None)
    sql = top_sql(
        by.value, metric.value, count, since=selected.since, until=selected.until,
        where=None if source.table != "flows" else selected.selected.sql, table=source.table, covers=source.covers,
        dialect=lake.dialect,
    )  # fmt: skip
    return _rows(lake.run(sql, selected.selected.params))


@router.get("/sankey", response_model=Sankey)
def sankey(
    lake: Lakes,
    selected: Windows,
    by: Annotated[str, Query(description="two or three dimensions, comma-separated")] = "proto,dst_port",
    unit: Unit = BPS,
    count: Annotated[int, Query(ge=1, le=500, description="the heaviest paths shown")] = 30,
) -> Sankey:
    """Flows between two or three dimensions: nodes per dimension value, links weighted by the average rate."""
    split = [dimension(name.strip()) for name in by.split(",") if name.strip()]
    if not 2 <= len(split) <= 3 or len({c.name for c in split}) != len(split):
        raise FlowscopeError("a Sankey diagram takes two or three different dimensions")
    nodes: dict[tuple[int, str], int] = {}
    links: dict[tuple[int, int], float] = {}
    result = lake.run(sankey_sql(selected, split, unit.value, count, lake.dialect), selected.selected.params)
    shown = labels(result.select([c.name for c in split])).to_pylist()
    for row, totals in zip(shown, result.column("total").to_pylist(), strict=True):
        path = [nodes.setdefault((i, row[c.name] or "(none)"), len(nodes)) for i, c in enumerate(split)]
        for source, target in pairwise(path):
            links[source, target] = links.get((source, target), 0.0) + float(totals) / selected.seconds
    return Sankey(
        unit=unit.value,
        dimensions=[c.name for c in split],
        nodes=[SankeyNode(name=label, dimension=split[i].name) for i, label in nodes],
        links=[SankeyLink(source=s, target=t, value=v) for (s, t), v in links.items()],
    )


@router.get("/flows", response_model=Rows)
def flows(
    lake: Lakes,
    selected: Windows,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Rows:
    """Flow search: the flows of the window that pass the filter, newest first, one page."""
    found = lake.run(flows_sql(selected, limit, offset, lake.dialect), selected.selected.params)
    index = found.schema.get_field_index("proto")
    return _rows(found.set_column(index, "proto", labels(found.select(["proto"])).column(0)), limit)


@router.get("/exporters")
def exporters(lake: Lakes) -> dict[str, Any]:
    """The collector's health (as ``flowscope exporters --format json``): per exporter datagrams, flows,
    sequence loss and decode errors; per listener socket drops; templates. From the collector's lake
    (with ``serve --from`` a database: the ``--lake`` there is, if any)."""
    if lake.lake is None:
        raise FlowscopeError("exporter health is kept in the collector's lake, and this console has none (--lake)")
    return lake_health(lake.lake)


@router.get("/store", response_model=Store)
def store(lake: Lakes) -> Store:
    """Where the flows are: the lake's tables with partitions, files, rows, bytes and days (a database server:
    none listed); the first and last flow start."""
    tables = table_summaries(lake.lake) if lake.dialect.name == "lake" and lake.lake is not None else []
    first = last = None
    if lake.dialect.name != "lake" or any(t.table == "flows" for t in tables):
        first, last = (_edge(lake, order) for order in ("ASC", "DESC"))
    return Store(lake=lake.shown(), tables=tables, first_flow=first, last_flow=last)


def _edge(lake: Queries, order: str) -> str | None:
    """The first (``ASC``) or last (``DESC``) flow start as text."""
    edge = lake.run(
        f"SELECT time_flow_start FROM {lake.dialect.flows} AS f WHERE time_flow_start IS NOT NULL "
        f"ORDER BY time_flow_start {order} LIMIT 1",
        {},
    )
    value: str | None = textual(edge).column(0)[0].as_py() if edge.num_rows else None
    return value
