"""``flowscope serve --from clickhouse://|postgresql://``: the API answers from the store as it does from the lake
holding the same flows, and its top-N equals ``flowscope top --from`` the same store."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from tests.clickhouse_server import clickhouse_database, clickhouse_server
from tests.materialize.conftest import postgres_server
from tests.query.test_top_stores import filled_stores
from tests.sinks.conftest import postgres_database

from flowscope.cli import main
from flowscope.errors import FlowscopeError
from flowscope.lake.layout import Lake
from flowscope.query.filter_language import compile_filter
from flowscope.transforms.rollups.spec import NAMES as ROLLUP_NAMES
from flowscope.web.app import create_app
from flowscope.web.queries import LakeQueries, QueryTimeout, StoreQueries, Window, source_for

__all__ = ["clickhouse_database", "clickhouse_server", "postgres_database", "postgres_server"]

pytestmark = pytest.mark.integration

WINDOW = {"since": "2024-03-01T00:00:00Z", "until": "2024-03-01T12:00:00Z"}
# tests.sinks.test_clickhouse_sink.flows: half a day of flows ending 2024-03-01T12:00Z
REQUESTS: list[tuple[str, dict[str, Any]]] = [
    ("/api/top", {"by": "src", "metric": "bytes", "count": 8}),
    ("/api/top", {"by": "port", "metric": "flows", "count": 8, "filter": "src_addr << 10.0.0.0/12"}),
    ("/api/top", {"by": "dst-as", "metric": "packets", "since": "2024-03-01T03:10:00Z"}),
    ("/api/timeseries", {"unit": "bps", "points": 48}),
    ("/api/timeseries", {"unit": "fps", "by": "dst_addr", "count": 4, "points": 24, "previous": "true"}),
    ("/api/timeseries", {"unit": "pps", "by": "proto", "points": 100, "filter": "not dst_port in (53, 443)"}),
    ("/api/timeseries", {"unit": "bps", "by": "src_as", "points": 12}),  # unknown (null) AS numbers: "(none)"
    ("/api/sankey", {"by": "proto,dst_port,dst_as", "unit": "bps", "count": 20}),
    ("/api/sankey", {"by": "src_addr,dst_addr", "unit": "fps", "filter": "addr << 2001:db8::/32"}),
    ("/api/flows", {"limit": 20, "offset": 30, "filter": "proto = udp and dst_port = 53"}),
]


def answer(client: TestClient, path: str, params: dict[str, Any]) -> Any:
    response = client.get(path, params={**WINDOW, **params})
    assert response.status_code == 200, (path, params, response.text)
    return response.json()


def comparable(path: str, body: Any) -> Any:
    """Rates rounded to 9 significant digits (each store sums in its own order); flow times to the
    microsecond (PostgreSQL keeps no more)."""
    if path == "/api/flows":
        times = [i for i, name in enumerate(body["columns"]) if name.startswith("time_")]
        for row in body["rows"]:
            for i in times:
                row[i] = row[i][:26]
    text = json.dumps(body, sort_keys=True)
    return json.loads(text, parse_float=lambda f: float(f"{float(f):.9g}"))


def test_the_api_answers_alike_from_the_lake_clickhouse_and_postgresql(
    tmp_path: Path, clickhouse_server, clickhouse_database, postgres_database
) -> None:
    lake = tmp_path / "lake"
    sources = filled_stores(lake, clickhouse_server.url(clickhouse_database), postgres_database)
    clients = [TestClient(create_app(LakeQueries(Lake.at(lake))))]
    clients += [TestClient(create_app(StoreQueries(source))) for source in sources[1:]]
    expected = {}
    for path, params in REQUESTS:  # the lake without roll-ups: raw flows
        expected[path, str(params)] = comparable(path, answer(clients[0], path, params))
        assert expected[path, str(params)] not in ({"columns": [], "rows": []}, {}), (path, params)
    # the lake's roll-ups too (kept that long: the flows are from 2024); the stores have theirs since db init
    (lake / "rollups.toml").write_text("".join(f"[{n}]\nretention_days = 100000\n" for n in ROLLUP_NAMES))
    assert CliRunner().invoke(main, ["--lake", str(lake), "rollup"]).exit_code == 0
    day = Window(*(datetime.fromisoformat(WINDOW[k]) for k in ("since", "until")), compile_filter(""))
    for queries in (LakeQueries(Lake.at(lake)), *(StoreQueries(source) for source in sources[1:])):
        assert source_for(queries, day, ["proto"], 900).table == "flows_5m"  # the 15-minute steps of 48 points
        assert source_for(queries, day, ["dst_as"], None).table == "flows_1h"
    for path, params in REQUESTS:
        for source, client in zip(sources, clients, strict=True):
            assert comparable(path, answer(client, path, params)) == expected[path, str(params)], (path, params, source)
    for source, client in zip(sources[1:], clients[1:], strict=True):
        top = answer(client, "/api/top", {"by": "pair", "metric": "bytes", "count": 5})
        cli = CliRunner().invoke(
            main,
            ["top", "--by", "pair", "-n", "5", "--from", source, "--format", "json", "--since", WINDOW["since"],
             "--until", WINDOW["until"]],
        )  # fmt: skip
        assert cli.exit_code == 0, cli.output
        rows = [json.loads(line) for line in cli.output.splitlines()]
        assert [dict(zip(top["columns"], row, strict=True)) for row in top["rows"]] == [
            {k: int(v) if isinstance(v, str) and v.isdigit() else v for k, v in row.items()} for row in rows
        ]
        store = answer(client, "/api/store", {})
        assert store["first_flow"].startswith("2024-03-01T00:00") and store["tables"] == []
        assert "***" in store["lake"] or "127.0.0.1" in store["lake"]
        refused = client.get("/api/exporters")
        assert refused.status_code == 400 and "lake" in refused.json()["detail"]


def test_store_queries_are_read_only_bounded_in_time_and_rows(
    clickhouse_server, clickhouse_database, postgres_database
) -> None:
    clickhouse = clickhouse_server.url(clickhouse_database)
    assert CliRunner().invoke(main, ["db", "init", clickhouse]).exit_code == 0
    for source, slow, write in (
        (
            clickhouse,
            "SELECT count() FROM system.numbers WHERE intHash64(number) % 7 = 3",
            "CREATE TABLE x (a UInt8) ENGINE = Memory",
        ),
        (postgres_database, "SELECT pg_sleep(5)", "CREATE TABLE x (a integer)"),
    ):
        queries = StoreQueries(source, timeout_s=1, max_rows=10)
        with pytest.raises(QueryTimeout):
            queries.run(slow, {})
        with pytest.raises(FlowscopeError, match=r"(?i)read.?only"):
            queries.run(write, {})
        numbers = (
            "SELECT number FROM system.numbers LIMIT 1000"
            if source == clickhouse
            else "SELECT generate_series(1, 1000) AS number"
        )
        assert queries.run(numbers, {}).num_rows == 10
