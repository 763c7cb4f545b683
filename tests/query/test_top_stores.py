"""One SQL surface: ``flowscope top --from lake|clickhouse://|postgresql://`` answers the same on the same flows."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import psycopg
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
from flowscope.transforms.rollups.spec import NAMES as ROLLUP_NAMES

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


FILTERS = [
    "src_addr << 10.0.0.0/12",
    "addr << 2001:db8::/32 and not dst_port in (53, 443)",
    "dst_addr << 93.184.0.0/24 or dst_addr = 93.184.1.63",
    "src_addr in (10.0.0.0/20, 2001:db8:1::/120, 10.0.18.229)",
    "src_addr << ::/0",  # every address: on PostgreSQL IPv4 is inet's own family, not inside ::/0
    "src_addr << ::ffff:10.0.0.0/104 and proto = tcp",
    "proto in (udp, icmp) or port < 100",
    "not (src_as = 64500) or dst_as != 15169",  # an unknown (null) src_as is neither 64500 nor not
    "src_as not in (64500) or dst_port >= 3389",
    "time_flow_start >= 2024-03-01T05:30:00Z and time_flow_start < 2024-03-01T07:00:00.5Z",
    "proto = 6 and (dst_port = 443 or dst_port = 993) and src_port > 40000",
]


def filled_stores(lake: Path, clickhouse: str, postgres: str) -> list[str]:
    """The same 20,000 flows in the lake, ClickHouse and PostgreSQL; their ``--from`` sources."""
    assert datetime(2024, 3, 1, 12, tzinfo=UTC) == END  # the report windows here fall inside the flows' half day
    sources = ["lake", clickhouse, postgres]
    sink = open_destinations(sources, DestinationContext(lake=Lake.at(lake)))
    table = flows(20_000)
    run((table.slice(i, 5_000) for i in range(0, table.num_rows, 5_000)), sink)
    return sources


def top_everywhere(lake: Path, sources: list[str], *args: str) -> list[str]:
    answers = []
    for source in sources:
        result = CliRunner().invoke(
            main, ["--lake", str(lake), "top", "-n", "15", "--from", source, "--format", "csv", *args]
        )
        assert result.exit_code == 0, (source, result.output)
        answers.append(result.output)
    return answers


def test_top_answers_the_same_on_the_lake_clickhouse_and_postgresql(
    tmp_path, clickhouse_server, clickhouse_database, postgres_database
):
    lake = tmp_path / "lake"
    sources = filled_stores(lake, clickhouse_server.url(clickhouse_database), postgres_database)
    for grouping, metric, extra in REPORTS:
        answers = top_everywhere(lake, sources, "--by", grouping, "--metric", metric, *extra)
        assert answers[0].count("\n") > 2, answers[0]
        assert answers[1] == answers[0], (grouping, "clickhouse")
        assert answers[2] == answers[0], (grouping, "postgresql")


def test_filters_select_the_same_flows_on_every_store(
    tmp_path, clickhouse_server, clickhouse_database, postgres_database
):
    lake = tmp_path / "lake"
    sources = filled_stores(lake, clickhouse_server.url(clickhouse_database), postgres_database)
    seen: dict[str, str] = {}
    for text in FILTERS:
        for grouping in ("src", "proto"):
            answers = top_everywhere(lake, sources, "--by", grouping, "--metric", "flows", "--filter", text)
            assert answers[1] == answers[0], (text, grouping, "clickhouse")
            assert answers[2] == answers[0], (text, grouping, "postgresql")
        assert answers[0].count("\n") > 1, (text, answers[0])  # each filter selects some flows
        assert seen.setdefault(answers[0], text) == text, (text, seen[answers[0]])  # and each different ones


ROLLUP_REPORTS = [
    ("proto", "bytes", []),
    ("src-as", "flows", ["--since", "2024-03-01T02:00:00Z", "--until", "2024-03-01T08:00:00Z"]),  # whole hours
    ("dst-as", "packets", ["--since", "2024-03-01T03:10:00Z", "--until", "2024-03-01T09:31:00Z"]),  # raw slivers
]


def test_rollups_answer_as_the_raw_flows_on_every_store(
    tmp_path, clickhouse_server, clickhouse_database, postgres_database
):
    lake = tmp_path / "lake"
    sources = filled_stores(lake, clickhouse_server.url(clickhouse_database), postgres_database)
    # the flows are from 2024: keep the lake's roll-ups that long (the stores' have no retention)
    (lake / "rollups.toml").write_text("".join(f"[{n}]\nretention_days = 100000\n" for n in ROLLUP_NAMES))
    assert CliRunner().invoke(main, ["--lake", str(lake), "rollup"]).exit_code == 0
    with psycopg.connect(postgres_database, autocommit=True) as con:  # as if from before the roll-ups:
        con.execute("DROP TABLE rollup_1h")
        con.execute("DROP TABLE rollup_1m")
    initialised = CliRunner().invoke(main, ["db", "init", postgres_database])  # refills them from the flows
    assert initialised.exit_code == 0 and "rollup_1h" in initialised.output, initialised.output
    for grouping, metric, extra in ROLLUP_REPORTS:
        args = ["--by", grouping, "--metric", metric, *extra]
        raw = top_everywhere(lake, sources, *args, "--where", "1 = 1")  # an SQL condition: the raw flows
        for source, expected in zip(sources, raw, strict=True):
            result = CliRunner().invoke(
                main, ["--lake", str(lake), "-v", "top", "-n", "15", "--from", source, "--format", "csv", *args]
            )
            assert result.exit_code == 0, result.output
            assert re.search(r"answered from flows_\d", result.stderr), (source, result.stderr)  # a roll-up
            assert result.stdout == expected == raw[0], (grouping, source)
