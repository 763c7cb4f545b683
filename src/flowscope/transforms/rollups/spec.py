"""The roll-up declarations: three resolutions, each with its own dimensions and retention.

A roll-up row is one (bucket, dimensions) group of raw flows: ``time`` (bucket start, UTC), the dimension
columns under their flow-table names, ``flows`` (records), ``flows_sampling_unknown`` (records whose sampling
rate is unknown, counted as they are), and the counters ``bytes``, ``packets``, ``bytes_rev``,
``packets_rev`` summed *scaled* by each record's sampling rate where it is known (``scaled()`` in SQL).

Defaults keep no addresses and no ports (what makes months of traffic small); ``LAKE/rollups.toml``
changes them::

    [flows_1m]
    dimensions = ["proto", "src_as", "dst_as", "in_if", "out_if", "exporter_name"]
    retention_days = 3
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path

from flowscope.errors import FlowscopeError
from flowscope.lake.layout import Lake
from flowscope.schema import ENRICHMENT_COLUMNS, FLOWS, Role, column

COUNTERS = ("bytes", "packets", "bytes_rev", "packets_rev")
SUMS = ("flows", "flows_sampling_unknown", *COUNTERS)
"""The summed columns of a roll-up row."""
DEFAULT_DIMENSIONS = ("sampler_address", "etype", "proto", "src_as", "dst_as", "in_if", "out_if")
"""The exporter is kept (a small set of addresses, and what interface numbers mean depends on it); the
flows' own addresses and ports are not."""
CONFIG_FILE = "rollups.toml"
_DIMENSION_ROLES = (Role.DIMENSION, Role.ADDRESS, Role.MAC)


@dataclass(frozen=True)
class Rollup:
    name: str
    seconds: int
    """Bucket width."""
    dimensions: tuple[str, ...]
    retention_days: int
    day_files: bool
    """One file per day (hour-wide buckets) instead of one per raw hour partition: fewer, larger files."""

    def digest(self) -> str:
        """What the rows depend on: a change means a rebuild from raw flows."""
        text = json.dumps([self.seconds, sorted(self.dimensions), COUNTERS, 1], separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def summable_from(coarse: Rollup, fine: Rollup) -> bool:
    """Whether ``coarse``'s rows are sums of ``fine``'s: the same dimensions, and ``fine``'s buckets divide
    ``coarse``'s (so each fine bucket lies in one coarse bucket)."""
    return set(coarse.dimensions) == set(fine.dimensions) and coarse.seconds % fine.seconds == 0


DEFAULTS = (
    Rollup("flows_1m", 60, DEFAULT_DIMENSIONS, 7, day_files=False),
    Rollup("flows_5m", 300, DEFAULT_DIMENSIONS, 35, day_files=False),
    Rollup("flows_1h", 3600, DEFAULT_DIMENSIONS, 400, day_files=True),
)
NAMES = tuple(r.name for r in DEFAULTS)


def load_rollups(lake: Lake) -> tuple[Rollup, ...]:
    """The roll-ups of ``lake``: the defaults, changed by ``LAKE/rollups.toml`` where it exists."""
    path = lake.root / CONFIG_FILE
    if not path.exists():
        return DEFAULTS
    try:
        document = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise FlowscopeError(f"{path}: {exc}") from None
    unknown = set(document) - set(NAMES)
    if unknown:
        raise FlowscopeError(f"{path}: unknown roll-up [{sorted(unknown)[0]}] (known: {', '.join(NAMES)})")
    return tuple(_configured(rollup, document.get(rollup.name, {}), path) for rollup in DEFAULTS)


def _configured(rollup: Rollup, section: dict[str, object], path: Path) -> Rollup:
    extra = set(section) - {"dimensions", "retention_days"}
    if extra:
        raise FlowscopeError(f"{path}: unknown key {sorted(extra)[0]!r} in [{rollup.name}]")
    dimensions = section.get("dimensions", rollup.dimensions)
    retention = section.get("retention_days", rollup.retention_days)
    if not isinstance(dimensions, list | tuple) or not all(isinstance(d, str) for d in dimensions):
        raise FlowscopeError(f"{path}: [{rollup.name}] dimensions must be a list of column names")
    for name in dimensions:
        declared = column(name, FLOWS) or (column(name) if name in ENRICHMENT_COLUMNS else None)
        if declared is None or declared.role not in _DIMENSION_ROLES:
            raise FlowscopeError(f"{path}: [{rollup.name}] {name!r} is not a dimension of the flows")
    if not isinstance(retention, int) or retention < 1:
        raise FlowscopeError(f"{path}: [{rollup.name}] retention_days must be a whole number of days >= 1")
    return replace(rollup, dimensions=tuple(dict.fromkeys(dimensions)), retention_days=retention)
