"""A destination URL's numeric query parameters (``?batch_rows=50000&retry_seconds=30``), read one way for every
database sink, so a bad value gets the same one-line error whichever server it was meant for."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TypeVar, overload

from flowscope.errors import FlowscopeError

_N = TypeVar("_N", int, float)


@overload
def positive(params: Mapping[str, str], name: str, default: _N, *, server: str, kind: type[_N]) -> _N: ...
@overload
def positive(params: Mapping[str, str], name: str, default: None, *, server: str, kind: type[_N]) -> _N | None: ...
def positive(params: Mapping[str, str], name: str, default: _N | None, *, server: str, kind: type[_N]) -> _N | None:
    """Parameter ``name`` as a positive ``kind`` (``default`` when absent); ``server`` names the destination in
    the error ("PostgreSQL URL parameter batch_rows='ten' is not a whole number")."""
    if name not in params:
        return default
    text = params[name]
    try:
        value = kind(text)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise FlowscopeError(f"{server} URL parameter {name}={text!r} is not {what}") from None
    if not 0 < value < math.inf:  # NaN and inf too
        raise FlowscopeError(f"{server} URL parameter {name} must be positive and finite")
    return value
