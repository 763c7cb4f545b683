"""The database sinks' numeric URL parameters: one reading, one error wording for every server."""

from __future__ import annotations

import pytest

from flowscope.errors import FlowscopeError
from flowscope.sinks.clickhouse import InsertPolicy
from flowscope.sinks.parameters import positive


def test_absent_gives_the_default_and_values_their_kind() -> None:
    assert positive({}, "batch_rows", 7, server="PostgreSQL", kind=int) == 7
    assert positive({}, "retention_days", None, server="PostgreSQL", kind=int) is None
    assert positive({"retry_seconds": "2.5"}, "retry_seconds", 60.0, server="Elasticsearch", kind=float) == 2.5
    assert positive({"batch_rows": "500"}, "batch_rows", 7, server="PostgreSQL", kind=int) == 500


@pytest.mark.parametrize(
    ("text", "kind", "message"),
    [
        ("ten", int, "PostgreSQL URL parameter p='ten' is not a whole number"),
        ("1.5", int, "PostgreSQL URL parameter p='1.5' is not a whole number"),
        ("x", float, "PostgreSQL URL parameter p='x' is not a number"),
        ("0", int, "PostgreSQL URL parameter p must be positive and finite"),
        ("-2", float, "PostgreSQL URL parameter p must be positive and finite"),
        ("nan", float, "PostgreSQL URL parameter p must be positive and finite"),
        ("inf", float, "PostgreSQL URL parameter p must be positive and finite"),
    ],
)
def test_bad_values_are_one_error(text: str, kind: type, message: str) -> None:
    with pytest.raises(FlowscopeError) as caught:
        positive({"p": text}, "p", 1, server="PostgreSQL", kind=kind)
    assert str(caught.value) == message


def test_clickhouse_policy_reads_its_fields_by_their_types() -> None:
    policy = InsertPolicy.from_params({"batch_rows": "10", "batch_seconds": "0.5"})
    assert (policy.batch_rows, policy.batch_seconds, policy.retry_seconds) == (10, 0.5, 60.0)
    with pytest.raises(FlowscopeError, match="unknown ClickHouse URL parameter 'batch'"):
        InsertPolicy.from_params({"batch": "10"})
    with pytest.raises(FlowscopeError, match="ClickHouse URL parameter batch_rows='1e3' is not a whole number"):
        InsertPolicy.from_params({"batch_rows": "1e3"})
