"""Server URLs are shown without their passwords, whichever kind and wherever they appear."""

from __future__ import annotations

import pytest

from flowscope.db.clickhouse import ClickHouseURL
from flowscope.db.elasticsearch import ElasticsearchURL
from flowscope.db.postgres import PostgresURL
from flowscope.db.urls import shown_url
from flowscope.errors import FlowscopeError
from flowscope.query.dialects import dialect_for
from flowscope.query.stores import run_sql
from flowscope.sinks.registry import find as find_destination
from flowscope.web.queries import StoreQueries


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://flows:s3cret@db:5432/flows", "postgresql://flows:***@db:5432/flows"),
        ("clickhouse://default:s3cret@127.0.0.1:9000/flows", "clickhouse://default:***@127.0.0.1:9000/flows"),
        ("elasticsearch://elastic:s3cret@es:9200/flows", "elasticsearch://elastic:***@es:9200/flows"),
        ("postgresql://u:p@ss@db/flows", "postgresql://u:***@db/flows"),  # an @ in the password: hidden whole
        (
            "postgresql://u@db/flows?sslmode=require&password=s3cret",
            "postgresql://u@db/flows?sslmode=require&password=***",
        ),
        ("postgresql://u:a@db/f?password=b&x=1#y", "postgresql://u:***@db/f?password=***&x=1#y"),
        ("postgresql://u@db/flows", "postgresql://u@db/flows"),
        ("clickhouse://127.0.0.1/flows", "clickhouse://127.0.0.1/flows"),
        ("lake", "lake"),
        ("postgresql:/u:s3cret@db/flows", "postgresql:/u:***@db/flows"),  # mistyped, in its error message
        ("clickhouse://u:s3cret@[::1", "clickhouse://u:***@[::1"),  # too broken for urlsplit: still shown
        ("u:s3cret@db:5432/flows", "u:***@db:5432/flows"),  # no scheme: "u:" is no scheme
        ("out.csv", "out.csv"),
    ],
)
def test_the_password_is_hidden(url: str, shown: str) -> None:
    assert shown_url(url) == shown


def test_every_place_that_shows_a_url_hides_it() -> None:
    assert "s3cret" not in PostgresURL.parse("postgresql://u:s3cret@db/flows").shown
    assert "s3cret" not in StoreQueries("clickhouse://u:s3cret@db/flows").shown()
    failing = [
        lambda: ClickHouseURL.parse("clickhouse://u:s3cret@db:port/flows"),
        lambda: ClickHouseURL.parse("clickhouse://u:s3cret@db/a`b"),
        lambda: ElasticsearchURL.parse("elasticsearch://u:s3cret@es:9200/UPPER"),
        lambda: PostgresURL.parse("postgres:/u:s3cret@db/flows"),
        lambda: dialect_for("mysql://u:s3cret@db/flows"),
        lambda: run_sql("mysql://u:s3cret@db/flows", "SELECT 1"),
        lambda: find_destination("postgresql:/u:s3cret@db/flows"),  # mistyped: no kind matches
        lambda: find_destination("u:s3cret@db:5432/flows"),
    ]
    for attempt in failing:
        with pytest.raises(FlowscopeError) as error:
            attempt()
        assert "s3cret" not in str(error.value) and "***" in str(error.value), error.value
