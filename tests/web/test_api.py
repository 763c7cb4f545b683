"""The console's JSON API on a small lake: numbers agree with ``flowscope top`` and with the flows themselves,
filters change results, errors are 4xx JSON, and a token, when set, is required."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from flowscope.cli import main
from flowscope.errors import FlowscopeError
from flowscope.lake import LakeWriter
from flowscope.lake.layout import Lake
from flowscope.web.app import create_app
from flowscope.web.auth import TOKEN_COOKIE
from flowscope.web.queries import LakeQueries, QueryTimeout
from helpers import HOUR_NS, flows

# flows(240, one every 6 minutes) fill 2024-05-01: src 10.0.0.(id % 50), dst 192.0.2.1:443, tcp, bytes = id
DAY = {"since": "2024-05-01T00:00:00Z", "until": "2024-05-02T00:00:00Z"}


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("web") / "lake"
    with LakeWriter(root) as writer:
        writer.write(flows(240, spacing_ns=HOUR_NS // 10))
    return root


@pytest.fixture(scope="module")
def client(lake: Path) -> TestClient:
    return TestClient(create_app(LakeQueries(Lake.at(lake))))


def get(client: TestClient, path: str, **params: object) -> dict:
    response = client.get(path, params={**DAY, **params})
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize(
    "by, metric, flow_filter",
    [("src", "bytes", ""), ("port", "flows", ""), ("host", "packets", "src_addr << 10.0.0.0/29 and proto = tcp")],
)
def test_top_equals_flowscope_top(client: TestClient, lake: Path, by: str, metric: str, flow_filter: str) -> None:
    api = get(client, "/api/top", by=by, metric=metric, count=5, filter=flow_filter)
    args = ["--lake", str(lake), "top", "--by", by, "--metric", metric, "-n", "5", "--format", "json"]
    args += ["--since", DAY["since"], "--until", DAY["until"], *(["--filter", flow_filter] if flow_filter else [])]
    cli = CliRunner().invoke(main, args, catch_exceptions=False)
    assert cli.exit_code == 0, cli.output
    # the CLI's JSON lines write 128-bit sums as strings (exact for any reader); the API as numbers
    expected = [
        {k: int(v) if isinstance(v, str) and v.isdigit() else v for k, v in json.loads(line).items()}
        for line in cli.output.splitlines()
    ]
    assert expected and [dict(zip(api["columns"], row, strict=True)) for row in api["rows"]] == expected


def test_the_filter_changes_results_and_reports_its_errors(client: TestClient) -> None:
    everything = get(client, "/api/top", by="src", metric="flows", count=100)
    some = get(client, "/api/top", by="src", metric="flows", count=100, filter="src_addr << 10.0.0.0/30")
    assert (len(everything["rows"]), len(some["rows"])) == (50, 4)
    bad = client.get("/api/top", params={**DAY, "filter": "src_addr << 10.0.0.0/33"})
    assert bad.status_code == 400 and bad.json()["position"] == 12 and "CIDR" in bad.json()["detail"]


def test_timeseries_rates_add_up_to_the_traffic(client: TestClient) -> None:
    total = get(client, "/api/timeseries", unit="bps", points=24)
    assert total["step_seconds"] == 3600 and len(total["times"]) == 24 and total["times"][0] == "2024-05-01T00:00:00Z"
    (series,) = total["series"]
    assert sum(series["values"]) * 3600 == pytest.approx(sum(range(240)) * 8)
    split = get(client, "/api/timeseries", unit="fps", by="src_addr", count=3, points=24, previous=True)
    names = [s["name"] for s in split["series"]]
    assert len(names) == 4 and names[-1] == "Other" and all(n.startswith("10.0.0.") for n in names[:3])
    assert sum(sum(s["values"]) for s in split["series"]) * 3600 == pytest.approx(240)
    assert split["previous"] == [0.0] * 24  # nothing on April 30
    late = get(client, "/api/timeseries", unit="fps", points=24, since="2024-05-01T00:30:00Z")
    assert late["times"][0] == "2024-05-01T00:00:00Z"  # widened to its first whole bucket, which holds 10 flows
    assert late["series"][0]["values"][0] * 3600 == pytest.approx(10)


def test_sankey_links_dimensions(client: TestClient) -> None:
    sankey = get(client, "/api/sankey", by="proto,dst_port,dst_addr", unit="pps", count=10)
    assert [n["name"] for n in sankey["nodes"]] == ["tcp", "443", "192.0.2.1"]
    assert [(link["source"], link["target"]) for link in sankey["links"]] == [(0, 1), (1, 2)]
    assert sankey["links"][0]["value"] == pytest.approx(240 / 86_400)
    assert client.get("/api/sankey", params={"by": "proto"}).status_code == 400
    assert client.get("/api/sankey", params={"by": "proto,bytes"}).status_code == 400  # a counter is no dimension


def test_flow_search_pages_newest_first(client: TestClient) -> None:
    first = get(client, "/api/flows", limit=10, filter="src_port < 100 and addr = 192.0.2.1")
    second = get(client, "/api/flows", limit=10, offset=90, filter="src_port < 100 and addr = 192.0.2.1")
    column = first["columns"].index("bytes")
    assert [row[column] for row in first["rows"]] == list(range(99, 89, -1)) and first["more"]
    assert [row[column] for row in second["rows"]] == list(range(9, -1, -1)) and not second["more"]
    assert first["rows"][0][first["columns"].index("src_addr")] == "10.0.0.49"


def test_store_and_exporters(client: TestClient, lake: Path) -> None:
    store = client.get("/api/store").json()
    assert store["tables"][0]["rows"] == 240 and store["first_flow"].startswith("2024-05-01T00:00:00")
    assert client.get("/api/exporters").json()["exporters"] == []


def test_bad_requests_are_4xx_json(client: TestClient) -> None:
    for params in ({"since": "yesterday"}, {"since": "1h", "until": "2h"}, {"by": "bytes"}, {"unit": "kbps"}):
        response = client.get("/api/timeseries", params=params)
        assert 400 <= response.status_code < 500 and "detail" in response.json(), params


def test_openapi_and_plotly_are_served(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/timeseries", "/api/top", "/api/sankey", "/api/flows", "/api/exporters", "/api/store"} <= set(paths)
    assert client.get("/vendor/plotly.min.js").text.lstrip().startswith("/**")
    assert "access-control-allow-origin" not in client.get("/api/store", headers={"Origin": "http://x"}).headers


def test_a_token_is_required_when_set(lake: Path) -> None:
    guarded = TestClient(create_app(LakeQueries(Lake.at(lake)), token="s3cret"))
    assert guarded.get("/api/store").status_code == 401
    assert guarded.get("/api/store", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert guarded.get("/api/store", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert guarded.get("/api/store?token=s3cret", follow_redirects=False).status_code == 200  # curl, no redirect
    opened = guarded.get("/top.html?by=port&token=s3cret", follow_redirects=False)
    assert opened.status_code == 303 and opened.headers["location"].endswith("/top.html?by=port")
    assert TOKEN_COOKIE in opened.cookies
    assert guarded.get("/api/store").status_code == 200  # the cookie now travels with the client


def test_serve_refuses_other_addresses_without_a_token(lake: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLOWSCOPE_TOKEN", raising=False)
    result = CliRunner().invoke(main, ["--lake", str(lake), "serve", "--listen", "0.0.0.0:8080"])
    assert result.exit_code == 2 and "--token" in result.output


def test_long_queries_are_interrupted(lake: Path) -> None:
    queries = LakeQueries(Lake.at(lake), timeout_s=0.2)
    with pytest.raises(QueryTimeout):
        queries.run("SELECT count(*) FROM range(100000000000) t(i) WHERE i % 7 = $x", {"x": 3})
    assert isinstance(QueryTimeout("x"), FlowscopeError)


def test_statements_on_the_shared_database_keep_their_own_views(lake: Path) -> None:
    """Concurrent statements run on cursors of one database, each with its own temporary views."""
    from concurrent.futures import ThreadPoolExecutor

    queries = LakeQueries(Lake.at(lake))
    sql = "SELECT count(*) AS n, sum(bytes) AS b FROM flows WHERE bytes < $x"
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda x: queries.run(sql, {"x": x}).to_pylist(), [10, 100, 240] * 4))
    assert results[:3] == [[{"n": 10, "b": 45}], [{"n": 100, "b": 4950}], [{"n": 240, "b": 28680}]]
    assert results == results[:3] * 4
    views = queries.run("SELECT count(*) AS n FROM duckdb_views() WHERE NOT internal", {}).to_pylist()
    assert views == [{"n": 0}]  # the others' views went with their cursors
