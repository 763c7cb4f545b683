"""Where a (re)assigned partition resumes: the destinations that store positions with their data, found
through the fan-out, the smallest position per partition when several disagree."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from flowscope.kafka.consume import recorded_positions
from flowscope.lake.layout import Lake
from flowscope.pipeline import Checkpoint, PositionStore
from flowscope.sinks.fanout import FanOut, position_stores
from flowscope.sinks.lake import LakeSink
from flowscope.sinks.postgres import PostgresSink


class Plain:
    """A destination without positions (a file, ClickHouse): not a resume point."""

    name = "plain"

    def write(self, batch: pa.Table) -> None: ...

    def flush(self, checkpoint: Checkpoint | None = None) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...


class Recording(Plain):
    """A destination that stores positions with its data (as PostgreSQL's sink)."""

    def __init__(self, positions: dict[str, Any]) -> None:
        self._positions = positions

    def positions(self) -> dict[str, Any]:
        return self._positions


def test_position_stores_are_found_through_the_fan_out() -> None:
    stores, plain = [Recording({}), Recording({})], Plain()
    assert position_stores(FanOut([stores[0], plain, stores[1]])) == stores
    assert position_stores(stores[0]) == [stores[0]]
    assert position_stores(plain) == []
    assert issubclass(PostgresSink, PositionStore)  # the real one, without a server


def test_a_partition_resumes_at_the_smallest_recorded_position_of_its_topic() -> None:
    ahead = Recording({"flows/0": 120, "flows/1": 7, "other/0": 1})
    behind = Recording({"flows/0": 100, "flows/2": 3})
    assert recorded_positions([ahead, behind], "flows") == {"flows/0": 100, "flows/1": 7, "flows/2": 3}
    assert recorded_positions([], "flows") == {}


def test_a_lake_is_a_position_store_read_afresh(tmp_path: Path) -> None:
    lake = LakeSink(Lake(tmp_path / "lake"))
    assert isinstance(lake, PositionStore)
    assert lake.positions() == {}
    other = LakeSink(Lake(tmp_path / "lake"))  # another consumer of the group commits to the same lake
    other.flush(Checkpoint(positions={"flows/0": 42}))
    assert lake.positions() == {"flows/0": 42}
