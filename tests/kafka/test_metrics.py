"""``flowscope consume --metrics``: the exposition text of a consumer snapshot."""

from __future__ import annotations

from flowscope.kafka.metrics import render


def test_consumer_metrics_per_partition() -> None:
    text = render({"topic": "flows", "messages": 12, "bytes": 3400, "flows": 3000,
                   "skips": {"wrong wire type": 1}, "positions": {"flows/0": 7, "flows/3": 5},
                   "lag": {"flows/0": 2}})  # fmt: skip
    assert 'flowscope_consumer_flows_total{topic="flows"} 3000' in text
    assert 'flowscope_consumer_skipped_total{topic="flows",reason="wrong wire type"} 1' in text
    assert 'flowscope_consumer_position{topic="flows",partition="3"} 5' in text
    assert 'flowscope_consumer_lag_messages{topic="flows",partition="0"} 2' in text
    assert "# TYPE flowscope_consumer_messages_total counter" in text
