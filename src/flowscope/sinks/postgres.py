"""PostgreSQL as a destination: ``postgresql://USER@HOST:5432/DB[?batch_rows=N&retention_days=D&...]``.

Flows go to the day-partitioned ``flows`` table and are rolled up into ``flows_5m`` (and the lake's
roll-ups ``rollup_1m``/``5m``/``1h``, ``transforms.rollups.stores``) in the same transaction
(``flowscope.db.postgres`` creates them where missing). Rows are encoded for binary COPY with
numpy (``materialize.pgcopy``: addresses as ``inet``, no Python object per row) and copied every
``batch_rows`` rows (default 100 000) into the open transaction, so the client holds at most one batch
of flows; each copy is rolled up on the client while it is being copied, and the transaction's roll-up
rows (bounded: ``postgres_rollups.HOLD_ROWS``) are added to their tables just before it commits
(``sinks.postgres_rollups``). ``flush`` commits: the flows, their roll-ups and, given a checkpoint, its
stream positions (``flowscope_positions``) become visible together or not at all, which is what lets a
consumer that restarts from ``read_positions`` store every message exactly once. ``abort`` rolls back
everything since the last flush; a killed writer loses just that. With ``retention_days``, day partitions
older than that many days are dropped at each commit, and so are ``flows_5m``'s older rows; with
``rollup_retention_days`` (at least ``retention_days``), the rows of every roll-up table older than that many
days are deleted at each commit instead. A roll-up that kept less than the raw flows would answer reports
(``rollups.choose``) without flows the raw table still holds: hence the rule.

A connection lost mid-transaction (server restarted, network) is retried: a new connection with doubling
pauses (0.2 s up to 5 s) for up to ``retry_seconds`` (default 60), then the open transaction's rows, which
the sink keeps up to ``replay_rows`` (default 1 000 000; more, and a lost connection is one error), are
copied again and the step that failed runs again. While it retries, ``write`` does not return, so the
producer waits. A commit whose acknowledgement was lost is ambiguous: sent again, its rows may be stored
twice (a consumer that stores positions can tell from ``read_positions``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flowscope.db import postgres as pg
from flowscope.errors import FlowscopeError
from flowscope.materialize.pgcopy import HEADER, TRAILER, encode_rows
from flowscope.materialize.upsert import quote
from flowscope.pipeline import Checkpoint
from flowscope.schema import TIMESTAMP
from flowscope.sinks.held import HeldFlows
from flowscope.sinks.parameters import positive
from flowscope.sinks.postgres_rollups import TransactionRollups
from flowscope.sinks.registry import Destination, DestinationContext, register
from flowscope.transforms.rollups.stores import retention_problem

_NS_PER_DAY = 86_400 * 1_000_000_000
DEFAULT_BATCH_ROWS = 100_000
DEFAULT_RETRY_SECONDS = 60
DEFAULT_REPLAY_ROWS = 1_000_000
_FIRST_PAUSE = 0.2
_LONGEST_PAUSE = 5.0
_COPY_CHUNK_ROWS = 25_000
_SERVER = "PostgreSQL"


class PostgresSink:
    """Stores flows in ``flows`` and ``flows_5m`` (see the module docstring for the guarantees)."""

    def __init__(self, url: str) -> None:
        self.url = pg.PostgresURL.parse(url)
        params = dict(self.url.params)
        self.batch_rows = positive(params, "batch_rows", DEFAULT_BATCH_ROWS, server=_SERVER, kind=int)
        self.retention_days = positive(params, "retention_days", None, server=_SERVER, kind=int)
        self.rollup_retention_days = positive(params, "rollup_retention_days", None, server=_SERVER, kind=int)
        problem = retention_problem(self.retention_days, self.rollup_retention_days)
        if problem is not None:
            raise FlowscopeError(f"PostgreSQL URL parameter rollup_retention_days: {problem}")
        self.retry_seconds = positive(params, "retry_seconds", DEFAULT_RETRY_SECONDS, server=_SERVER, kind=int)
        self.replay_rows = positive(params, "replay_rows", DEFAULT_REPLAY_ROWS, server=_SERVER, kind=int)
        self.name = f"postgresql {self.url.shown}"
        self.con = pg.connect(self.url, "flowscope-sink")
        self._columns = [name for name, _ in pg.flows_columns()]
        self._rollups = TransactionRollups()
        with self._errors():
            with self.con.transaction(), self.con.cursor() as cursor:
                pg.ensure_tables(cursor, self.url)
            self._days = self._existing_days()
        self.held = HeldFlows()
        self._uncommitted = 0
        self._kept: list[pa.Table] | None = []  # the open transaction's rows, for a replay (None: too many)
        self.rows_committed = 0
        self.commits = 0
        self.retries = 0
        self.longest_outage = 0.0
        self.most_rows_replayed = 0
        self.dropped_partitions: list[str] = []
        self.expired_rollup_rows = 0

    def write(self, batch: pa.Table) -> None:
        if self.held.add(batch) and self.held.rows >= self.batch_rows:
            self._copy()

    def flush(self, checkpoint: Checkpoint | None = None) -> None:
        self._copy()
        positions = checkpoint.positions if checkpoint is not None else {}
        if not self._uncommitted and not positions and not self.retention_days:
            return
        self._retrying(lambda: self._commit(positions))
        self.rows_committed += self._uncommitted
        self.commits += 1
        self._uncommitted = 0
        self._kept = []

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._rollups.close()
            self.con.close()

    def abort(self) -> None:
        self.held.clear()
        self._uncommitted, self._kept = 0, []
        self._rollups.close()
        if not self.con.closed:
            if not self.con.broken:
                self.con.rollback()
            self.con.close()

    def kept(self) -> list[str]:
        """After an abort: the commits made (the open transaction is rolled back)."""
        return [f"{self.name} keeps the {self.rows_committed:,} flows committed before"]

    def positions(self) -> dict[str, Any]:
        """The stream positions committed so far (as ``db.postgres.read_positions``)."""
        return pg.read_positions(self.url)

    def notes(self) -> list[str]:
        notes = [f"{self.name}: {self.rows_committed:,} flows in {self.commits:,} commits"]
        if self.retries:
            notes.append(
                f"{self.name}: connection lost and retried {self.retries} times; longest outage "
                f"{self.longest_outage:.1f} s, up to {self.most_rows_replayed:,} uncommitted rows sent again"
            )
        if self.dropped_partitions:
            notes.append(f"{self.name}: retention dropped {', '.join(self.dropped_partitions)}")
        if self.expired_rollup_rows:
            notes.append(f"{self.name}: retention deleted {self.expired_rollup_rows:,} roll-up rows")
        notes += self.held.notes(self.name, "PostgreSQL")
        return notes

    def _errors(self) -> Any:
        return _PostgresErrors(self.url)

    def _existing_days(self) -> set[date]:
        with self.con.cursor() as cursor:
            rows = cursor.execute(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = %s::regclass",
                (quote(pg.FLOWS_TABLE),),
            ).fetchall()
        self.con.commit()
        prefix = f"{pg.FLOWS_TABLE}_p"
        return {datetime.strptime(name[len(prefix) :], "%Y%m%d").date() for (name,) in rows if name.startswith(prefix)}

    def _retrying(self, step: Callable[[], None]) -> None:
        """Run ``step``; if the connection is lost, reconnect with doubling pauses for up to ``retry_seconds``,
        copy the open transaction's rows again (kept up to ``replay_rows``) and run ``step`` again."""
        import psycopg

        started = time.monotonic()
        pause = _FIRST_PAUSE
        while True:
            try:
                with self._errors_unless_lost():
                    step()
                break
            except psycopg.OperationalError as lost:
                reason = " ".join(str(lost).split())
                if self._uncommitted and self._kept is None:
                    raise FlowscopeError(
                        f"{self.name}: connection lost ({reason}) with {self._uncommitted:,} uncommitted rows, more "
                        f"than replay_rows={self.replay_rows:,} kept to send again"
                    ) from None
                while True:
                    waited = time.monotonic() - started
                    if waited + pause > self.retry_seconds:
                        raise FlowscopeError(
                            f"{self.name}: connection lost ({reason}) and not back within {self.retry_seconds} s: "
                            f"{self._uncommitted + self.held.rows:,} rows not committed"
                        ) from None
                    self.retries += 1
                    time.sleep(pause)
                    pause = min(2 * pause, _LONGEST_PAUSE)
                    try:
                        self._reconnect()
                        break
                    except (FlowscopeError, psycopg.OperationalError) as again:
                        reason = " ".join(str(again).split())
        if pause > _FIRST_PAUSE:
            self.longest_outage = max(self.longest_outage, time.monotonic() - started)

    def _reconnect(self) -> None:
        """A new connection with the open transaction's rows copied again into its first transaction."""
        if not self.con.closed:
            self.con.close()
        self.con = pg.connect(self.url, "flowscope-sink")
        self._days = self._existing_days()
        self._rollups.clear()
        for table in self._kept or ():
            self._copy_table(table)
        self.most_rows_replayed = max(self.most_rows_replayed, self._uncommitted)

    def _errors_unless_lost(self) -> Any:
        return _PostgresErrors(self.url, let_connection_errors_through=True)

    def _commit(self, positions: dict[str, Any]) -> None:
        with self.con.cursor() as cursor:
            self._rollups.send(cursor, self._copy_rows, committing=True)
            if positions:
                self._store_positions(cursor, positions)
            today = datetime.now(UTC).date()
            if self.retention_days:
                oldest = today - timedelta(days=self.retention_days - 1)
                self.dropped_partitions += pg.drop_partitions_before(cursor, oldest)
                self._days = {day for day in self._days if day >= oldest}
            if self.rollup_retention_days:
                oldest = today - timedelta(days=self.rollup_retention_days - 1)
                self.expired_rollup_rows += pg.delete_rollups_before(cursor, oldest, pg.rollup_tables())
            elif self.retention_days:  # flows_5m follows the raw flows, the lake's roll-ups are kept
                self.expired_rollup_rows += pg.delete_rollups_before(cursor, oldest, pg.rollup_tables()[:1])
        self.con.commit()

    def _copy(self) -> None:
        """COPY the buffered rows (and their roll-up) into the open transaction."""
        if not self.held.rows:
            return
        table = self.held.joined()
        received = table.column("time_received")
        if received.null_count:
            received = pc.fill_null(received, pa.scalar(time.time_ns(), TIMESTAMP))
            table = table.set_column(table.schema.get_field_index("time_received"), "time_received", received)
        self._retrying(lambda: self._copy_table(table))
        self._uncommitted += self.held.rows
        if self._kept is not None:
            self._kept.append(table)
            if self._uncommitted > self.replay_rows:
                self._kept = None
        self.held.clear()

    def _copy_table(self, table: pa.Table) -> None:
        """Partitions for ``table``'s days and its rows in the open transaction; its roll-up summed meanwhile."""
        days = np.unique(table.column("time_received").cast(pa.int64()).to_numpy() // _NS_PER_DAY)
        new_days = sorted(d for d in (date(1970, 1, 1) + timedelta(days=int(n)) for n in days) if d not in self._days)
        with self.con.cursor() as cursor:
            pg.create_partitions(cursor, new_days)
            self._rollups.add(table)
            self._copy_rows(cursor, pg.FLOWS_TABLE, self._columns, table.select(self._columns))
            if self._rollups.due():
                self._rollups.send(cursor, self._copy_rows, committing=False)
        self._days.update(new_days)

    @staticmethod
    def _copy_rows(cursor: Any, target: str, columns: list[str], rows: pa.Table) -> None:
        """Binary COPY of ``rows``, encoded in chunks while a writer thread sends the previous ones (the
        encoding and the server's parsing overlap: 1 M flows took 5.1 s encoded whole, then sent)."""
        from psycopg.copy import QueuedLibpqWriter

        names = ", ".join(quote(c) for c in columns)
        sql = f"COPY {quote(target)} ({names}) FROM STDIN (FORMAT BINARY)"
        with cursor.copy(sql, writer=QueuedLibpqWriter(cursor)) as copy:
            copy.write(HEADER)
            for batch in rows.to_batches(max_chunksize=_COPY_CHUNK_ROWS):
                for part in encode_rows(pa.Table.from_batches([batch])):
                    copy.write(part)
            copy.write(TRAILER)

    def _store_positions(self, cursor: Any, positions: dict[str, Any]) -> None:
        from psycopg.types.json import Jsonb

        cursor.executemany(
            f"INSERT INTO {pg.POSITIONS_TABLE} (stream, position, updated) VALUES (%s, %s, now()) "
            "ON CONFLICT (stream) DO UPDATE SET position = excluded.position, updated = excluded.updated",
            [(str(stream), Jsonb(position)) for stream, position in positions.items()],
        )


class _PostgresErrors:
    """Turns the server's refusals (and, unless let through for a retry, a lost connection) into one-line
    ``FlowscopeError``s."""

    def __init__(self, url: pg.PostgresURL, *, let_connection_errors_through: bool = False) -> None:
        self.url = url
        self.let_through = let_connection_errors_through

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        import psycopg

        if self.let_through and isinstance(exc, psycopg.OperationalError):
            return
        if isinstance(exc, psycopg.Error):
            message = " ".join(str(exc).split())
            raise FlowscopeError(f"PostgreSQL at {self.url.shown}: {message}") from None


def _open(url: str, context: DestinationContext) -> PostgresSink:
    return PostgresSink(url)


register(
    Destination(
        "postgresql",
        "postgresql://USER@HOST:5432/DB: day-partitioned flows + the flows_5m roll-up in PostgreSQL",
        lambda url: url.startswith(pg.SCHEMES),
        _open,
    )
)
