"""One SQL surface: ``flowscope top --from lake|clickhouse://|postgresql://`` answers the same on the same flows."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from tests.clickhouse_server import clickhouse_database, clickhouse_server
from tests.materialize.conftest import postgres_server
from tests.sinks.conftest import postgres_database
from tests.sinks.test_clickhouse_sink import END, flows

from flowscope.cli import main
from flowscope.lake.layout import Lake
from flowscope.pipeline import run
from flowscope.sinks.registry import DestinationContext, open_destinations

__all__ = ["clickhouse_database", "clickhouse_server", "postgres_database", "postgres_server"]

pytestmark = pytest.mark.integration

REPORTS = [
    ("src", "bytes", []),
    ("host", "packets", []),
    ("pair", "flows", ["--since", "2024-03-01T04:00:00Z", "--until", "2024-03-01T09:30:00Z"]),
    ("port", "bytes", ["--since", "2024-03-01T06:00:00Z"]),
    ("proto", "flows", []),
    ("src-as", "packets", ["--until", "2024-03-01T08:00:00Z"]),  # 64500 and unknown (null)
    ("dst-as", "bytes", ["--where", "dst_as <> 15169"]),
]


def test_top_answers_the_same_on_the_lake_clickhouse_and_postgresql(
    tmp_path, clickhouse_server, clickhouse_database, postgres_database
):
    assert datetime(2024, 3, 1, 12, tzinfo=UTC) == END  # the report windows above fall inside the flows' half day
    lake = tmp_path / "lake"
    sources = ["lake", clickhouse_server.url(clickhouse_database), postgres_database]
    sink = open_destinations(sources, DestinationContext(lake=Lake.at(lake)))
    table = flows(20_000)
    run((table.slice(i, 5_000) for i in range(0, table.num_rows, 5_000)), sink)
    for grouping, metric, extra in REPORTS:
        answers = []
        for source in sources:
            result = CliRunner().invoke(
                main,
                ["--lake", str(lake), "top", "--by", grouping, "--metric", metric, "-n", "15", "--from", source,
                 "--format", "csv", *extra],
            )  # fmt: skip
            assert result.exit_code == 0, (source, result.output)
            answers.append(result.output)
        assert answers[0].count("\n") > 2, answers[0]
        assert answers[1] == answers[0], (grouping, "clickhouse")
        assert answers[2] == answers[0], (grouping, "postgresql")
