"""Times as people type them; a time no datetime can hold is a user error, not a crash (the web API gets any text)."""

import pytest

from flowscope.errors import FlowscopeError
from flowscope.times import parse_time


@pytest.mark.parametrize("text", ["99999999999999999", "99999999999w", "yesterday", ""])
def test_unreadable_or_impossible_times_are_user_errors(text: str) -> None:
    with pytest.raises(FlowscopeError):
        parse_time(text)
