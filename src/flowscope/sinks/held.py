"""The flow batches a database destination holds until its next send.

ClickHouse, PostgreSQL and Elasticsearch store flows only: rows of other catalogue tables (sFlow interface
counters) are counted here and reported in the sink's notes, never dropped silently.
"""

from __future__ import annotations

import time

import pyarrow as pa

from flowscope.pipeline import table_of
from flowscope.schema import FLOWS


class HeldFlows:
    def __init__(self) -> None:
        self.tables: list[pa.Table] = []
        self.rows = 0
        self.since = 0.0
        """When the oldest held batch arrived (``time.monotonic``)."""
        self.not_stored: dict[str, int] = {}

    def add(self, batch: pa.Table) -> bool:
        """Hold a flows batch (True), or count the rows of another table (False)."""
        table = table_of(batch)
        if table != FLOWS:
            self.not_stored[table] = self.not_stored.get(table, 0) + batch.num_rows
            return False
        if not self.tables:
            self.since = time.monotonic()
        self.tables.append(batch)
        self.rows += batch.num_rows
        return True

    def joined(self) -> pa.Table:
        return pa.concat_tables(self.tables, promote_options="permissive")

    def clear(self) -> None:
        self.tables, self.rows = [], 0

    def notes(self, sink: str, store: str) -> list[str]:
        return [
            f"{sink}: {rows:,} {table} rows not stored (only flows go to {store})"
            for table, rows in self.not_stored.items()
        ]
