"""The lake as a destination (``lake``, ``lake:PATH``): every table of the catalogue, with the ingest ledger.

One ``LakeWriter`` per table a batch is tagged for (``pipeline.table_of``). ``flush`` with a
checkpoint commits through the ledger (``flowscope.lake.ledger``: staged files, commit record,
renames), so the inputs it names are recorded in the same commit as their rows; ``flush``
without one publishes directly, as streams do on their timer.
"""

from __future__ import annotations

import os
import socket
import uuid
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from flowscope.errors import FlowscopeError
from flowscope.lake.layout import Lake
from flowscope.lake.ledger import Ledger, recover
from flowscope.lake.writer import LakeLimits, LakeWriter
from flowscope.pipeline import FLOWS, Checkpoint, table_of
from flowscope.schema import PACKETS
from flowscope.sinks.registry import Destination, DestinationContext, register

if TYPE_CHECKING:
    from flowscope.transforms.rollups.keeper import RollupKeeper

# The time column a table's rows are partitioned by (flows: when they started; packets: when captured).
PARTITION_TIME = {FLOWS: "time_flow_start", PACKETS: "time"}
DEFAULT_PARTITION_TIME = "time_received"


class LakeSink:
    """Writes batches to their lake tables; ``transactional`` publishes only at checkpoints (and close);
    ``keep_rollups`` keeps the lake's roll-ups current beside a long-running writer."""

    def __init__(
        self,
        lake: Lake,
        limits: LakeLimits | None = None,
        *,
        transactional: bool = False,
        keep_rollups: bool = False,
    ) -> None:
        self.lake = lake
        self.name = f"lake {lake.root}"
        self.limits = limits or LakeLimits()
        self.transactional = transactional
        self.writers: dict[str, LakeWriter] = {}
        self._writer_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._ledger: Ledger | None = None
        self.inputs_committed = 0
        self.keeper: RollupKeeper | None = None
        if keep_rollups:  # imported here: DuckDB's import would weigh on every batch read (~0.1 s)
            from flowscope.transforms.rollups.keeper import RollupKeeper

            self.keeper = RollupKeeper(lake)
        if lake.root.exists() and not lake.root.is_dir():  # else mkdir's bare "FileExistsError: [Errno 17]"
            raise FlowscopeError(f"lake {lake.root}: is a file, not a lake directory")
        self.new = not lake.root.exists()  # said in the notes: a mistyped --lake starts a lake somewhere unexpected
        lake.root.mkdir(parents=True, exist_ok=True)  # a query right after a collector starts finds an empty lake
        recover(lake)

    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            self._ledger = Ledger(self.lake)
        return self._ledger

    def _writer(self, table: str) -> LakeWriter:
        writer = self.writers.get(table)
        if writer is None:
            writer = self.writers[table] = LakeWriter(
                self.lake,
                table,
                max_rows=self.limits.max_rows,
                max_bytes=self.limits.max_bytes,
                max_age=self.limits.max_age,
                time_column=PARTITION_TIME.get(table, DEFAULT_PARTITION_TIME),
                conform_rows=table == FLOWS,
                autopublish=not self.transactional,
            )
        return writer

    def write(self, batch: pa.Table) -> None:
        self._writer(table_of(batch)).write(batch)

    def flush(self, checkpoint: Checkpoint | None = None) -> None:
        if checkpoint is None or not (checkpoint.inputs or checkpoint.positions):
            for writer in self.writers.values():
                writer.flush()
        else:
            for writer in self.writers.values():
                writer.spill()
            staged = [pair for writer in self.writers.values() for pair in writer.staged]
            self.ledger.commit(checkpoint, staged, self._writer_id)
            self.inputs_committed += len(checkpoint.inputs)
            for writer in self.writers.values():
                writer.publish()
        if self.keeper is not None and FLOWS in self.writers:
            self.keeper.landed()

    def positions(self) -> dict[str, Any]:
        """The stream positions committed with the lake's data (``pipeline.PositionStore``), read afresh: another
        consumer of the group may have committed since this sink opened."""
        return Ledger(self.lake).positions()

    def close(self) -> None:
        self.flush()
        if self.keeper is not None:
            self.keeper.stop()

    def abort(self) -> None:
        for writer in self.writers.values():
            writer.abort()
        if self.keeper is not None:
            self.keeper.stop(final_pass=False)

    def kept(self) -> list[str]:
        """After an abort: the inputs committed so far (a rerun reads only the rest), or, for a stream (not
        transactional), the rows published so far."""
        if not self.transactional:
            return [f"{self.name} keeps the rows published before"]
        if not self.inputs_committed:  # "what earlier runs stored" of a lake this run made was untrue: none did
            before = "a new lake, left empty" if self.new else "what earlier runs stored is kept"
            return [f"{self.name}: no input of this run committed ({before})"]
        committed = f"{self.inputs_committed} input(s) this run committed"
        return [f"{self.name} keeps the {committed} (a rerun reads only the rest)"]

    def notes(self) -> list[str]:
        new = [f"{self.name}: a new lake (its directory did not exist)"] if self.new else []
        return new + ([] if self.keeper is None else self.keeper.notes())

    @property
    def rows_written(self) -> dict[str, int]:
        return {table: writer.rows_written for table, writer in self.writers.items()}


def _open(url: str, context: DestinationContext) -> LakeSink:
    path = url.partition(":")[2].removeprefix("//")
    lake = Lake.at(path) if path else context.lake
    return LakeSink(lake, context.lake_limits, transactional=context.transactional, keep_rollups=context.keep_rollups)


register(
    Destination(
        "lake",
        "the flow lake (default: --lake); lake:PATH for another one",
        lambda url: url == "lake" or url.startswith("lake:"),
        _open,
    )
)
