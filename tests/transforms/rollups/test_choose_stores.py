"""Which roll-up answers on ClickHouse and PostgreSQL (always current), and the range that ends now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flowscope.transforms.rollups.choose import choose_store_table

TABLES = {"flows_raw", "rollup_1m", "rollup_5m", "rollup_1h"}


def test_a_range_ending_now_takes_its_last_bucket_whole_and_reads_no_raw_flows() -> None:
    now = datetime.now(UTC)
    since = (now - timedelta(days=3)).replace(minute=1, second=0, microsecond=0)  # whole minutes only
    choice = choose_store_table(["proto"], since=since, until=now, tables=TABLES)
    assert choice.table == "flows_1m" and choice.covers[0] == since and choice.covers[1] > now  # type: ignore[operator]
    hours = since.replace(minute=0)
    assert choose_store_table(["dst_as"], since=hours, until=now, tables=TABLES).table == "flows_1h"


def test_a_past_range_keeps_its_raw_slivers_and_the_rest_falls_back() -> None:
    since = datetime(2024, 3, 1, 3, 10, 30, tzinfo=UTC)
    until = datetime(2024, 3, 1, 9, 31, tzinfo=UTC)
    choice = choose_store_table(["src_as"], since=since, until=until, tables=TABLES)
    assert (choice.table, choice.covers) == (
        "flows_1h",
        (since.replace(hour=4, minute=0, second=0), until.replace(minute=0)),
    )
    assert choose_store_table(["src_addr"], since=since, until=until, tables=TABLES).table == "flows"
    assert "no roll-ups" in choose_store_table(["proto"], tables={"flows_raw"}).why
    assert choose_store_table(["proto"], step=600, tables=TABLES).table == "flows_5m"  # 1h does not divide 600 s
