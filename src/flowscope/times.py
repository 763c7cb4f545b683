"""Times as people type them: ISO 8601, epoch seconds, or a span ago (``6h``, ``2d``).

Shared by the command line (``--since``/``--until``), the filter language (time literals) and the web API
(time ranges in a page's URL), so a time means the same everywhere.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from flowscope.errors import FlowscopeError

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_time(text: str, *, now: datetime | None = None) -> datetime:
    """ISO 8601 (naive means UTC), epoch seconds, or a span ago such as ``90m``, ``6h``, ``2d``."""
    text = text.strip()
    now = now or datetime.now(UTC)
    relative = _RELATIVE.match(text)
    try:
        if relative:
            return now - timedelta(**{_UNITS[relative.group(2)]: float(relative.group(1))})
        if re.fullmatch(r"\d{9,}(\.\d+)?", text):
            return datetime.fromtimestamp(float(text), UTC)
        moment = datetime.fromisoformat(text)
    except (OverflowError, OSError) as exc:  # a span or an epoch beyond the years datetime (or the C library) holds
        raise FlowscopeError(f"time {text!r} is out of range") from exc
    except ValueError as exc:
        raise FlowscopeError(f"cannot read time {text!r}: use ISO 8601, epoch seconds or e.g. 6h / 2d") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
