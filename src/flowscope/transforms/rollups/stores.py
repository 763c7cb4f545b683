"""The lake's roll-ups on ClickHouse and PostgreSQL, from the same definitions (``spec.DEFAULTS``).

A store keeps ``rollup_1m``, ``rollup_5m`` and ``rollup_1h`` (its ``flows_5m`` is flow-pipeline's AS
roll-up, so the lake's names cannot be reused), with the lake roll-up's columns under the same names
(``build.store_columns``): the bucket start ``time``, the dimensions, ``flows``,
``flows_sampling_unknown`` and the counters summed scaled by the known sampling rate.

- **ClickHouse**: a ``SummingMergeTree`` per roll-up, filled by a materialized view from every insert into
  ``flows_raw``, as flow-pipeline's ``flows_5m``. A sort key cannot be Nullable, so it holds each
  dimension as ``assumeNotNull(d), isNull(d)`` (null and 0 stay apart) and the summed columns are named. Rows
  of one key are added up when parts merge; until then a key may have several rows, which every report
  adds up anyway (they all GROUP BY).
- **PostgreSQL**: a table per roll-up with a ``NULLS NOT DISTINCT`` unique key on (time, dimensions)
  (PostgreSQL 15 or later); the sink computes each roll-up of a batch with the lake's own GROUP BY
  (``build.group_flows``) and upserts it in the transaction that stores the raw rows.

``db init`` fills a roll-up it creates from the flows already there, so a store's roll-ups are always
current: ``choose.choose_store_table`` needs no bookkeeping. Their retention is their own (the definitions'
``retention_days`` are the lake's): on ClickHouse a TTL (``db init --rollup-ttl-days``), on PostgreSQL the
writer's ``rollup_retention_days``. It may not be shorter than the raw flows' (``retention_problem``): a
roll-up chosen for a range it no longer holds would answer without flows the raw table still has.
"""

from __future__ import annotations

from collections.abc import Mapping

from flowscope.transforms.rollups.build import store_columns
from flowscope.transforms.rollups.spec import COUNTERS, DEFAULTS, SUMS, Rollup
from flowscope.transforms.rollups.spec import summable_from as summable_from  # the sinks use it from here

PREFIX = "rollup_"


def store_table(name: str) -> str:
    """The store's table for lake roll-up ``name``: ``flows_1m`` -> ``rollup_1m``."""
    return PREFIX + name.removeprefix("flows_")


def retention_problem(raw_days: int | None, rollup_days: int | None) -> str | None:
    """Why roll-ups kept ``rollup_days`` cannot go with raw flows kept ``raw_days`` (None: all kept), or None."""
    if rollup_days is None or (raw_days is not None and raw_days <= rollup_days):
        return None
    kept = "for ever" if raw_days is None else f"{raw_days} days"
    return (
        f"the roll-ups would be kept {rollup_days} days and the raw flows {kept}: reports answered from the roll-ups "
        "would miss flows the raw table still holds (keep the raw flows no longer than the roll-ups)"
    )


def store_rollups() -> tuple[Rollup, ...]:
    """The roll-ups a store keeps: the lake's default definitions (a store has no ``rollups.toml``)."""
    return DEFAULTS


# -- ClickHouse


def clickhouse_columns(rollup: Rollup) -> list[tuple[str, str]]:
    """(name, type) as ``system.columns`` shows them: the summed columns are never null (SummingMergeTree
    adds up only plain numbers)."""
    return [
        (name, ch_type.removeprefix("Nullable(").removesuffix(")") if name in SUMS else ch_type)
        for name, ch_type, _ in store_columns(rollup)
    ]


_CLICKHOUSE_DAY = "toDate(toDateTime(intDiv(ifNull(`time`, 0), 1000000000)))"
"""A roll-up row's UTC day on ClickHouse: its partition, and what its TTL counts from."""


def clickhouse_table_ddl(database: str, rollup: Rollup, ttl_days: int | None = None) -> str:
    """``rollup``'s table; with ``ttl_days``, rows are deleted that many days after their bucket's day (by the
    server's merges, a partition at a time), except those of unknown time (kept, as on PostgreSQL)."""
    columns = ",\n    ".join(f"`{name}` {ch_type}" for name, ch_type in clickhouse_columns(rollup))
    key = ", ".join(f"assumeNotNull(`{name}`), isNull(`{name}`)" for name in ("time", *rollup.dimensions))
    sums = ", ".join(f"`{name}`" for name in SUMS)
    ttl = f"\nTTL {_CLICKHOUSE_DAY} + INTERVAL {ttl_days} DAY DELETE WHERE isNotNull(`time`)" if ttl_days else ""
    return (
        f"CREATE TABLE IF NOT EXISTS `{database}`.{store_table(rollup.name)} (\n    {columns}\n)\n"
        f"ENGINE = SummingMergeTree(({sums})) PARTITION BY {_CLICKHOUSE_DAY} ORDER BY ({key}){ttl}"
    )


def clickhouse_view_name(rollup: Rollup) -> str:
    return f"{store_table(rollup.name)}_view"


def clickhouse_select(database: str, rollup: Rollup, names: Mapping[str, str]) -> str:
    """The GROUP BY of ``flows_raw`` rows into ``rollup``'s (``names``: catalogue name -> ``flows_raw``
    column). One level of SELECT: 18.16 runs a view's outermost query over each inserted block."""
    width = rollup.seconds * 1_000_000_000
    rate = f"ifNull(nullIf(`{names['sampling_rate']}`, 0), 1)"
    counters = [f"sum(ifNull(`{names[name]}` * {rate}, 0)) AS `{name}`" for name in COUNTERS]
    dimensions = [f"`{names[name]}` AS `{name}`" for name in rollup.dimensions]
    groups = ", ".join(f"`{name}`" for name in ("time", *rollup.dimensions))
    return (
        f"SELECT intDiv(`{names['time_flow_start']}`, {width}) * {width} AS `time`, "
        + "".join(f"{d}, " for d in dimensions)
        + f"count() AS flows, countIf(ifNull(`{names['sampling_rate']}`, 0) = 0) AS flows_sampling_unknown, "
        + ", ".join(counters)
        + f" FROM `{database}`.flows_raw GROUP BY {groups}"
    )


def clickhouse_view_ddl(database: str, rollup: Rollup, names: Mapping[str, str]) -> str:
    return (
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS `{database}`.{clickhouse_view_name(rollup)} "
        f"TO `{database}`.{store_table(rollup.name)} AS\n{clickhouse_select(database, rollup, names)}"
    )


# -- PostgreSQL


def postgres_columns(rollup: Rollup) -> list[tuple[str, str]]:
    return [(name, pg_type) for name, _, pg_type in store_columns(rollup)]


def postgres_table_ddl(rollup: Rollup) -> str:
    columns = ", ".join(f'"{name}" {pg_type}{" NOT NULL" if name in SUMS else ""}'
                        for name, pg_type in postgres_columns(rollup))  # fmt: skip
    key = ", ".join(f'"{name}"' for name in ("time", *rollup.dimensions))
    return f'CREATE TABLE IF NOT EXISTS "{store_table(rollup.name)}" ({columns}, UNIQUE NULLS NOT DISTINCT ({key}))'


def postgres_backfill(rollup: Rollup) -> str:
    """``rollup``'s rows from the ``flows`` already stored (``db init`` creating it on a database in use)."""
    seconds = rollup.seconds
    rate = "coalesce(nullif(sampling_rate, 0), 1)"
    dimensions = "".join(f'"{name}", ' for name in rollup.dimensions)
    counters = ", ".join(f'coalesce(sum("{name}" * {rate}), 0)' for name in COUNTERS)
    names = ", ".join(f'"{name}"' for name, _ in postgres_columns(rollup))
    groups = ", ".join(str(i) for i in range(1, len(rollup.dimensions) + 2))
    return (
        f'INSERT INTO "{store_table(rollup.name)}" ({names}) '
        f"SELECT to_timestamp(floor(extract(epoch FROM time_flow_start) / {seconds}) * {seconds}), {dimensions}"
        f"count(*), count(*) FILTER (WHERE coalesce(sampling_rate, 0) = 0), {counters} "
        f"FROM flows GROUP BY {groups}"
    )


def postgres_upsert(rollup: Rollup, stage: str) -> str:
    """Add the rows staged in ``stage`` to ``rollup``'s table."""
    table = store_table(rollup.name)
    names = ", ".join(f'"{name}"' for name, _ in postgres_columns(rollup))
    key = ", ".join(f'"{name}"' for name in ("time", *rollup.dimensions))
    sums = ", ".join(f'"{name}" = "{table}"."{name}" + excluded."{name}"' for name in SUMS)
    return f'INSERT INTO "{table}" ({names}) SELECT {names} FROM {stage} ON CONFLICT ({key}) DO UPDATE SET {sums}'


def pipeline_names() -> dict[str, str]:
    """Catalogue flow column -> its ``flows_raw`` name."""
    from flowscope.db.clickhouse import raw_columns

    return {c.source.name: c.name for c in raw_columns() if c.source is not None}
