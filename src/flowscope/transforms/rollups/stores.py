"""The lake's roll-ups on ClickHouse and PostgreSQL: their table names there (the stores' ``flows_5m`` is
flow-pipeline's AS roll-up, so the lake's names cannot be reused)."""

from __future__ import annotations

from flowscope.transforms.rollups.spec import DEFAULTS, Rollup

PREFIX = "rollup_"


def store_table(name: str) -> str:
    """The store's table for lake roll-up ``name``: ``flows_1m`` -> ``rollup_1m``."""
    return PREFIX + name.removeprefix("flows_")


def store_rollups() -> tuple[Rollup, ...]:
    """The roll-ups a store keeps: the lake's default definitions (a store has no ``rollups.toml``)."""
    return DEFAULTS
