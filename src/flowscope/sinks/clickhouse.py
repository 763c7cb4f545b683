"""ClickHouse as a destination: ``clickhouse://[USER[:PASSWORD]@]HOST[:9000]/DB[?batch_rows=N&...]``.

Flows go to flow-pipeline's ``flows_raw`` (created with ``flows_5m`` and its view where missing, as
``flowscope db init`` does; ``flowscope.db.clickhouse``), in columnar Native blocks encoded with numpy
(``flowscope.db.clickhouse_native``). ClickHouse wants few large inserts (every insert is a part the server
merges later), so rows are buffered and inserted every ``batch_rows`` rows (default 50 000) or when the
oldest buffered row is ``batch_seconds`` old (default 5) at the next write, and at every flush.

An insert that fails on the network (server restarting, connection dropped) is retried on a new
connection with doubling pauses (0.2 s up to 5 s) for up to ``retry_seconds`` (default 60), then the
run fails with one error saying how many rows were not written. While it retries, ``write`` does not
return: the buffer stays at most one batch plus one incoming table, and the producer waits (a ``Stream``'s
queue fills and blocks it) instead of memory growing. The server's own refusals (a type someone changed)
are not retried.

ClickHouse has no transactions: a flush inserts and returns (each block is atomic, all or nothing), and
``abort`` can only discard what is not inserted yet. An insert whose acknowledgement was lost is inserted
again by the retry (plain MergeTree does not deduplicate), so a server dying mid-insert can duplicate at
most one batch. Checkpoint positions are not stored here (the lake and PostgreSQL store them with the rows).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flowscope.db import clickhouse as ch
from flowscope.errors import FlowscopeError
from flowscope.pipeline import Checkpoint
from flowscope.schema import TIMESTAMP
from flowscope.sinks.held import HeldFlows
from flowscope.sinks.parameters import positive
from flowscope.sinks.registry import Destination, DestinationContext, register

_NS_PER_DAY = 86_400 * 1_000_000_000
_FIRST_PAUSE = 0.2
_LONGEST_PAUSE = 5.0


@dataclass(frozen=True)
class InsertPolicy:
    """How the sink batches and retries; each field can be set as a URL query parameter of the same name."""

    batch_rows: int = 50_000
    batch_seconds: float = 5.0
    retry_seconds: float = 60.0

    @classmethod
    def from_params(cls, params: dict[str, str]) -> InsertPolicy:
        known = {f.name: f.type for f in fields(cls)}
        values: dict[str, Any] = {}
        for name in params:
            if name not in known:
                raise FlowscopeError(f"unknown ClickHouse URL parameter {name!r} (known: {', '.join(known)})")
            whole = known[name] in (int, "int")
            values[name] = positive(params, name, None, server="ClickHouse", kind=int if whole else float)
        return cls(**values)


def _is_transient(exc: BaseException) -> bool:
    """A failure a new connection may not see again (network, server restarting), not a refusal."""
    from clickhouse_driver import errors

    return isinstance(exc, (errors.NetworkError, errors.SocketTimeoutError, EOFError, OSError))


def raw_arrays(table: pa.Table, now_ns: int) -> list[pa.Array | pa.ChunkedArray]:
    """``table``'s flows as the columns of ``flows_raw`` (``db.clickhouse.raw_columns`` order), still in
    their chunks (the encoder takes them one by one)."""
    received = table.column("time_received")
    if received.null_count:
        received = pc.fill_null(received, pa.scalar(now_ns, TIMESTAMP))
    days = received.cast(pa.int64()).to_numpy() // _NS_PER_DAY
    arrays: list[pa.Array | pa.ChunkedArray] = []
    for raw in ch.raw_columns():
        if raw.source is None:
            arrays.append(pa.array(days.astype(np.uint16)))
        elif raw.source.name == "time_received":
            arrays.append(received)
        else:
            arrays.append(table.column(raw.source.name))
    return arrays


class ClickHouseSink:
    """Inserts flows into ``flows_raw`` in batches (see the module docstring for the guarantees)."""

    def __init__(self, url: str, policy: InsertPolicy | None = None) -> None:
        self.url = ch.ClickHouseURL.parse(url)
        self.policy = policy or InsertPolicy.from_params(dict(self.url.params))
        self.name = f"clickhouse {self.url.host}:{self.url.port}/{self.url.database}"
        ch.init(self.url)
        self.client = ch.connect(self.url)
        self.columns = [(c.name, c.type) for c in ch.raw_columns()]
        self.table = f"`{self.url.database}`.{ch.RAW_TABLE}"
        self.held = HeldFlows()
        self.rows_inserted = 0
        self.inserts = 0
        self.retries = 0
        self.longest_outage = 0.0
        self.most_rows_held = 0

    def write(self, batch: pa.Table) -> None:
        if not self.held.add(batch):
            return
        policy = self.policy
        if self.held.rows >= policy.batch_rows or time.monotonic() - self.held.since >= policy.batch_seconds:
            self._insert()

    def flush(self, checkpoint: Checkpoint | None = None) -> None:
        self._insert()

    def close(self) -> None:
        try:
            self._insert()
        finally:
            self.client.disconnect()

    def abort(self) -> None:
        self.held.clear()
        self.client.disconnect()

    def kept(self) -> list[str]:
        """After an abort: the inserts made (ClickHouse has no transaction to roll back)."""
        return [f"{self.name} keeps the {self.rows_inserted:,} flows inserted before"]

    def notes(self) -> list[str]:
        notes = [f"{self.name}: {self.rows_inserted:,} flows in {self.inserts:,} inserts into {ch.RAW_TABLE}"]
        if self.retries:
            notes.append(
                f"{self.name}: {self.retries} inserts retried; longest outage {self.longest_outage:.1f} s with "
                f"up to {self.most_rows_held:,} rows held"
            )
        notes += self.held.notes(self.name, "ClickHouse")
        return notes

    def _insert(self) -> None:
        if not self.held.rows:
            return
        from clickhouse_driver.errors import ServerException

        from flowscope.db.clickhouse_native import insert

        arrays = raw_arrays(self.held.joined(), time.time_ns())
        started = time.monotonic()
        pause = _FIRST_PAUSE
        while True:
            try:
                insert(self.client, self.table, self.columns, arrays)
                break
            except ServerException as exc:
                raise ch.server_error(self.url, exc) from None
            except Exception as exc:
                if not _is_transient(exc):
                    raise
                waited = time.monotonic() - started
                self.most_rows_held = max(self.most_rows_held, self.held.rows)
                if waited + pause > self.policy.retry_seconds:
                    raise FlowscopeError(
                        f"{self.url.where} failed for {waited:.0f} s ({ch.first_line(exc)}): "
                        f"{self.held.rows:,} rows not written"
                    ) from None
                self.retries += 1
                time.sleep(pause)
                pause = min(2 * pause, _LONGEST_PAUSE)
        if pause > _FIRST_PAUSE:  # it was retried
            self.longest_outage = max(self.longest_outage, time.monotonic() - started)
        self.rows_inserted += self.held.rows
        self.inserts += 1
        self.held.clear()


def _open(url: str, context: DestinationContext) -> ClickHouseSink:
    return ClickHouseSink(url)


register(
    Destination(
        "clickhouse",
        "clickhouse://HOST:9000/DB: flow-pipeline's flows_raw (+ flows_5m) in a ClickHouse server",
        lambda url: url.startswith(f"{ch.SCHEME}://"),
        _open,
    )
)
