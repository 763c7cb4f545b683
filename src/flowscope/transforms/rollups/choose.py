"""Which table answers a report: the coarsest roll-up that holds its columns, its time bounds and
up-to-date rows for every raw partition in its range; else the raw flows."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flowscope.lake.layout import Lake
from flowscope.schema import FLOWS
from flowscope.transforms.rollups.build import (
    Partition,
    fingerprints,
    hour_dirs,
    key_text,
    load_state,
    partition_files,
    source_digest,
    target_of,
)
from flowscope.transforms.rollups.spec import Rollup, load_rollups

OPEN_END = timedelta(seconds=60)
"""How close to now a range's end counts as "now" (``choose``)."""


@dataclass(frozen=True)
class Choice:
    table: str
    """A roll-up's name, or ``flows``."""
    why: str
    """In words, for ``-v``."""
    covers: tuple[datetime | None, datetime | None] = (None, None)
    """The part of the range the roll-up answers for (its whole buckets); the raw flows answer for the rest."""


def choose_table(
    lake: Lake,
    columns: Collection[str],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    where: str | None = None,
    step: int | None = None,
) -> Choice:
    """The coarsest roll-up that holds ``columns``, is current for the whole buckets of [since, until) and
    whose buckets the range falls on; failing that, the coarsest such roll-up for the range's whole buckets,
    the raw flows answering for the partial buckets at its ends. While data is still landing (the writers
    roll up only settled hours), the roll-up current furthest into the range answers up to its first stale
    partition and the raw flows for the rest. ``step``: the roll-up's buckets must divide it (a time series
    in buckets of that many seconds)."""
    if where:
        return Choice(FLOWS, "an SQL filter needs the raw flows")
    state = load_state(lake)
    dirs = hour_dirs(lake, _days(since, until))
    return choose(
        load_rollups(lake),
        columns,
        since,
        until,
        step,
        lambda rollup, first, last: _first_stale(lake, rollup, state.get(rollup.name), dirs, first, last),
    )


def _days(since: datetime | None, until: datetime | None) -> set[str] | None:
    """The UTC days a range touches (None: unbounded), each a raw day a roll-up partition of it may come from."""
    if since is None or until is None:
        return None
    first, last = since.astimezone(UTC).date(), until.astimezone(UTC).date()
    return {str(first + timedelta(days=n)) for n in range((last - first).days + 1)}


def choose(
    rollups: Collection[Rollup],
    columns: Collection[str],
    since: datetime | None,
    until: datetime | None,
    step: int | None,
    first_stale: Callable[[Rollup, datetime | None, datetime | None], datetime | None],
    name: Callable[[str], str] = str,
) -> Choice:
    """``choose_table``'s rule over ``rollups``, ``first_stale`` saying up to where one is current for a range
    (None: all of it; ``NEVER``: none of it); ``name``: a roll-up's table name in the store.

    A range that ends now (within ``OPEN_END``: the console's default ``until`` is the request's time) or
    later may take the whole bucket holding its end: no flow starts after now, so that bucket holds just the
    range's last flows (and those of the last moments since it was asked), and no raw flows are read for them
    (on ClickHouse and PostgreSQL a raw sliver is a scan of every flow: they are not sorted by start time)."""
    reasons = []
    complete, partial = [], []
    open_end = until is not None and until >= datetime.now(UTC) - OPEN_END
    for rollup in sorted(rollups, key=lambda rollup: -rollup.seconds):
        missing = sorted(set(columns) - set(rollup.dimensions))
        first = None if since is None else _bucket(since, rollup.seconds, up=True)
        last = None if until is None else _bucket(until, rollup.seconds, up=open_end)
        if missing:
            reasons.append(f"{rollup.name} has no {', '.join(missing)}")
            continue
        if step is not None and step % rollup.seconds:
            reasons.append(f"{rollup.name}'s {rollup.seconds}-second buckets do not divide the {step}-second step")
            continue
        if first is not None and last is not None and first >= last:
            reasons.append(f"the range holds no whole {rollup.seconds}-second bucket of {rollup.name}")
            continue
        stale = first_stale(rollup, first, last)
        if stale is None:
            complete.append((rollup, first, last))
        elif stale is NEVER:
            reasons.append(f"{rollup.name} is not up to date for the range (run `flowscope rollup`)")
        else:
            partial.append((rollup, first, stale))
    exact = [
        (rollup, first, last)
        for rollup, first, last in complete
        if first == since and (last == until or (open_end and last is not None and until is not None and last > until))
    ]
    if exact or complete:
        rollup, first, last = (exact or complete)[0]
        edges = "" if exact else " (the raw flows for the partial buckets at its ends)"
        why = f"{name(rollup.name)} holds the columns and is up to date for the range{edges}"
        return Choice(rollup.name, why, (first, last))
    if partial:  # data still landing: the roll-up up to its first stale partition, the raw flows after it
        rollup, first, stale = max(partial, key=lambda choice: choice[2])
        why = f"{name(rollup.name)} holds the columns and is up to date until {stale:%Y-%m-%d %H:%M}"
        return Choice(rollup.name, why + " (the raw flows after it)", (first, stale))
    return Choice(FLOWS, "; ".join(reasons) or "no roll-ups")


def _bucket(moment: datetime, seconds: int, *, up: bool) -> datetime:
    """``moment`` rounded to a bucket boundary (up or down)."""
    epoch = moment.timestamp()
    rounded = (-(-epoch // seconds) if up else epoch // seconds) * seconds
    return datetime.fromtimestamp(rounded, UTC)


NEVER = datetime.min.replace(tzinfo=UTC)
"""A roll-up that cannot answer for any of a range: never built under its current definition, or stale from
the range's first partition on."""


def _first_stale(
    lake: Lake,
    rollup: Rollup,
    entry: dict[str, object] | None,
    dirs: dict[Partition, int],
    since: datetime | None,
    until: datetime | None,
) -> datetime | None:
    """The start of the earliest roll-up partition in [since, until) not computed from its raw flows as they
    are now (None: all are current). Partitions start on hour or day boundaries, which are bucket boundaries
    of every roll-up, so the roll-up answers exactly up to there.

    A partition whose raw hour directories have the times ``rollup`` recorded (``build.fingerprints``) is
    current without listing its files; only the others (data still landing, or rolled up right after it
    landed) are listed and their names and sizes compared: a stat per hour instead of a stat per file. For
    30 days of 20 raw files an hour (14,400 files) 22–34 ms instead of 1.0–1.2 s (load average 13)."""
    if entry is None or entry.get("definition") != rollup.digest():
        return NEVER
    done, recorded = entry.get("partitions", {}), entry.get("dirs", {})
    assert isinstance(done, dict) and isinstance(recorded, dict)
    now = fingerprints(rollup, dirs)
    in_range = {target_of(rollup, partition) for partition in dirs if _overlaps(partition, since, until)}
    current = 0  # partitions with raw files found current so far
    for target in sorted(in_range):
        key = key_text(target)
        if recorded.get(key) != now[target]:
            files = partition_files(lake, [hour for hour in dirs if target_of(rollup, hour) == target])
            if not files:  # only files still being staged: nothing to roll up yet
                continue
            if done.get(key) != source_digest(files):
                return NEVER if current == 0 else datetime.fromisoformat(f"{target[0]}T{target[1]:02d}:00:00+00:00")
        current += 1
    return None


def _overlaps(partition: Partition, since: datetime | None, until: datetime | None) -> bool:
    start = datetime.fromisoformat(f"{partition[0]}T{partition[1]:02d}:00:00+00:00")
    return (until is None or start < until) and (since is None or start + timedelta(hours=1) > since)


def choose_store_table(
    columns: Collection[str],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    step: int | None = None,
    tables: Collection[str] = (),
) -> Choice:
    """``choose_table`` for ClickHouse and PostgreSQL, whose roll-ups (``rollups.stores``) are kept with every
    insert and filled from the flows already there when ``db init`` creates them, so always current;
    ``tables``: the store's tables (a database initialised before roll-ups existed has none)."""
    from flowscope.transforms.rollups.stores import store_rollups, store_table

    present = [rollup for rollup in store_rollups() if store_table(rollup.name) in tables]
    if not present:
        return Choice(FLOWS, "the database has no roll-ups (flowscope db init URL creates them)")
    return choose(present, columns, since, until, step, lambda *_: None, store_table)
