"""SQL predicates shared by reports and other readers of the lake (`profile --lake`)."""

from __future__ import annotations

from datetime import datetime


def time_predicates(since: datetime | None, until: datetime | None, column: str = "time_flow_start") -> list[str]:
    """A time window on ``column``, plus bounds on the ``date`` partition so whole days are skipped unread."""
    predicates = []
    if since is not None:
        predicates += [f"{column} >= '{since.isoformat()}'", f"date >= DATE '{since.date()}'"]
    if until is not None:
        predicates += [f"{column} < '{until.isoformat()}'", f"date <= DATE '{until.date()}'"]
    return predicates
