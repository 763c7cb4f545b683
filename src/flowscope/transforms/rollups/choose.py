"""Which table answers a report: the coarsest roll-up that holds its columns, its time bounds and
up-to-date rows for every raw partition in its range; else the raw flows."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta

from flowscope.lake.layout import Lake
from flowscope.schema import FLOWS
from flowscope.transforms.rollups.build import Partition, key_text, load_state, raw_partitions, source_digest, targets
from flowscope.transforms.rollups.spec import Rollup, load_rollups


def choose_table(
    lake: Lake,
    columns: Collection[str],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    where: str | None = None,
) -> tuple[str, str]:
    """(table, why): a roll-up name or ``flows``, and the reason in words (``-v`` shows it)."""
    if where:
        return FLOWS, "an SQL filter needs the raw flows"
    rollups = sorted(load_rollups(lake), key=lambda rollup: -rollup.seconds)
    state = load_state(lake)
    raw = raw_partitions(lake)
    reasons = []
    for rollup in rollups:
        missing = sorted(set(columns) - set(rollup.dimensions))
        if missing:
            reasons.append(f"{rollup.name} has no {', '.join(missing)}")
            continue
        if any(bound is not None and bound.timestamp() % rollup.seconds for bound in (since, until)):
            reasons.append(f"{rollup.name}'s {rollup.seconds}-second buckets do not align with the time range")
            continue
        if not _current(rollup, state.get(rollup.name), raw, since, until):
            reasons.append(f"{rollup.name} is not up to date for the range (run `flowscope rollup`)")
            continue
        return rollup.name, f"{rollup.name} holds the columns and is up to date for the range"
    return FLOWS, "; ".join(reasons) or "no roll-ups"


def _current(
    rollup: Rollup,
    entry: dict[str, object] | None,
    raw: dict[Partition, list],
    since: datetime | None,
    until: datetime | None,
) -> bool:
    """Whether every roll-up partition that raw flows in [since, until) feed was computed from them as they are."""
    if entry is None or entry.get("definition") != rollup.digest():
        return False
    done = entry.get("partitions", {})
    assert isinstance(done, dict)
    in_range = {partition: files for partition, files in raw.items() if _overlaps(partition, since, until)}
    needed = set(targets(rollup, in_range))
    every = targets(rollup, raw)
    return all(done.get(key_text(target)) == source_digest(every[target]) for target in needed)


def _overlaps(partition: Partition, since: datetime | None, until: datetime | None) -> bool:
    start = datetime.fromisoformat(f"{partition[0]}T{partition[1]:02d}:00:00+00:00")
    return (until is None or start < until) and (since is None or start + timedelta(hours=1) > since)
