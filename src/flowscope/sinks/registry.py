"""The table of destinations: a URL or file path -> a ``Sink``.

A destination module calls ``register`` at import time with a matcher (is this URL mine?) and an
opener; ``DESTINATION_MODULES`` lists the modules to import, so adding a destination is one new
module and one line here (as ``readers/registry.py`` does for inputs). ``open_destinations`` opens
one sink per ``--to`` and fans out to all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pyarrow as pa

from flowscope.db.urls import shown_url
from flowscope.errors import FlowscopeError
from flowscope.lake.layout import Lake
from flowscope.lake.writer import LakeLimits
from flowscope.pipeline import Sink
from flowscope.plugins import Registry
from flowscope.schema import FLOWS
from flowscope.sinks.fanout import FanOut

DESTINATION_MODULES: tuple[str, ...] = (
    "flowscope.sinks.lake",
    "flowscope.sinks.files",
    "flowscope.sinks.clickhouse",
    "flowscope.sinks.postgres",
    "flowscope.sinks.elasticsearch",
    "flowscope.kafka.sink",
)


@dataclass(frozen=True)
class DestinationContext:
    """What a destination may need besides its URL."""

    lake: Lake
    """The lake named by --lake (``lake`` without a path)."""
    lake_limits: LakeLimits = field(default_factory=LakeLimits)
    transactional: bool = False
    """The run checkpoints finished inputs: publish at checkpoints only (files, not streams)."""
    schema: pa.Schema | None = None
    """The schema of an empty result (file outputs still write a valid empty file); flows by default."""
    keep_rollups: bool = False
    """A long-running writer: the lake keeps its roll-ups current in the background (``rollups.keeper``)."""
    table: str = FLOWS
    """The catalogue table the run produces (``packets`` for ``--records packets``): a file holds that table."""


@dataclass(frozen=True)
class Destination:
    name: str
    description: str
    matches: Callable[[str], bool]
    open: Callable[[str, DestinationContext], Sink]
    check: Callable[[str], object] | None = None
    """What can be checked before anything opens (a file's directory exists): an error there starts nothing. It
    returns what the URL names (a file's resolved path), so that one target named twice is found."""


_DESTINATIONS = Registry[Destination](DESTINATION_MODULES)
register = _DESTINATIONS.register
destinations = _DESTINATIONS.loaded


def find(url: str) -> Destination:
    found = _DESTINATIONS.first(lambda destination: destination.matches(url))
    if found is None:
        scheme = url.partition("://")[0] if "://" in url else None
        what = (
            f"unknown destination scheme {scheme!r}"
            if scheme
            else f"cannot tell what destination {shown_url(url)!r} is"
        )
        # Only the kinds of its shape (URLs for a URL; lake, files, stdout for a name): all of them made one line of
        # 900 characters for "-o out", whose answer ("a file path ending .parquet, ...") was lost in it.
        kinds = "; ".join(
            f"{d.name}: {d.description}" for d in destinations().values() if ("://" in d.description) == bool(scheme)
        )
        raise FlowscopeError(f"{what} (known: {kinds})")
    return found


def open_destination(url: str, context: DestinationContext) -> Sink:
    return find(url).open(url, context)


def open_destinations(urls: Sequence[str], context: DestinationContext) -> Sink:
    """One sink for all of ``urls`` (at least one); every URL is checked before any is opened."""
    if not urls:
        raise FlowscopeError("no destination given")
    targets: set[object] = set()
    for url in urls:
        check = find(url).check
        target = url if check is None else check(url)
        if target in targets:  # two writers of one file clobbered each other's staging file: a crash, exit 1
            raise FlowscopeError(f"{shown_url(url)}: named twice as a destination")
        targets.add(target)
    sinks: list[Sink] = []
    try:
        for url in urls:
            sinks.append(open_destination(url, context))
    except BaseException:
        for sink in sinks:
            sink.abort()
        raise
    return sinks[0] if len(sinks) == 1 else FanOut(sinks)
