"""The derived views: services_by_day over the example CSV, empty lakes, and which views an SQL text names."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from click.testing import CliRunner

from flowscope.cli import main
from flowscope.query import open_lake, views_named

EXAMPLE = Path(__file__).parents[1] / "csv" / "data" / "unicauca11_example.csv"


def test_services_by_day_of_the_example(lake_dir: Path) -> None:
    result = CliRunner().invoke(main, ["--lake", str(lake_dir), "read", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    with open_lake(lake_dir, views=["pairs", "services_by_day"]) as con:
        repeated = "SELECT packets, bytes, packets_rev FROM pairs WHERE src_port = 80 AND dst_port = 38848"
        assert con.sql(repeated).fetchall() == [(4, 674, 3)]
        assert con.sql("SELECT * FROM services_by_day").fetchall() == [(dt.date(2017, 4, 26), "50.31.185", 80, 4, 674)]
        both = con.sql(
            "SELECT service_net(ip('2001:db8:1:2::5')), service_net(ip('10.1.2.3')), service_net(NULL)"
        ).fetchall()[0]
    assert both == ("2001:db8:1::/48", "10.1.2", None)


def test_views_exist_on_an_empty_lake(lake_dir: Path) -> None:
    lake_dir.mkdir()
    with open_lake(lake_dir, views=["services_by_day", "pairs"]) as con:
        assert con.sql("SELECT count(*) FROM services_by_day").fetchall()[0][0] == 0
        assert con.sql("SELECT count(*) FROM pairs").fetchall()[0][0] == 0


def test_views_named_finds_every_mention_and_no_partial_word() -> None:
    sql = 'WITH p AS (SELECT * FROM main."Pairs") SELECT * FROM p JOIN services_by_day USING (day)'
    assert views_named(sql) == ("pairs", "services_by_day")
    assert views_named("SELECT count(*) FROM flows WHERE src_port = 80") == ()
    assert views_named("SELECT * FROM my_pairs, pairs_2024, conversations2") == ()


def test_query_and_top_see_derived_views_by_name(lake_dir: Path) -> None:
    assert CliRunner().invoke(main, ["--lake", str(lake_dir), "read", str(EXAMPLE)]).exit_code == 0
    runner = CliRunner()
    query = runner.invoke(main, ["--lake", str(lake_dir), "query", "SELECT count(*) FROM PAIRS", "--format", "csv"])
    assert query.exit_code == 0, query.output
    assert query.output.splitlines()[1] == "7"
    where = "src_port IN (SELECT service_port FROM services_by_day)"
    top = runner.invoke(main, ["--lake", str(lake_dir), "top", "--by", "src", "--where", where, "--format", "csv"])
    assert top.exit_code == 0, top.output
    assert top.output.splitlines()[1].startswith('"50.31.185.39",')
