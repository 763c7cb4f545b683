"""ClickHouse: the URL, the connection, and flow-pipeline's tables rendered from the column catalogue.

``flows_raw`` keeps flow-pipeline's names and order for its columns (``Date``, ``TimeReceived``, ...,
``Bytes``, ``Packets``), then every other catalogue column under its flow-pipeline name
(``schema.Column.pipeline_name``), typed as the catalogue says (``Column.clickhouse``: times are UInt64
nanoseconds, addresses FixedString(16), unknown values null). Two columns cannot be null because they
key the table: ``Date`` (the UTC day of ``TimeReceived``) and ``TimeReceived`` itself (a record without
one gets the time it was inserted). ``flows_5m`` is flow-pipeline's 5-minute AS roll-up: a
SummingMergeTree whose ``ETypeMap`` nested columns the engine sums per EtherType when it merges parts;
``flows_5m_view`` fills it from every insert into ``flows_raw`` (unknown AS numbers and EtherTypes count
as 0 there, as in flow-pipeline). Its sort key is (Date, Timeslot, SrcAS, DstAS): flow-pipeline also puts
``ETypeMap.EType`` in it, but a key column is never summed, and then neither is the map it names (on
18.16, two parts with ``[2048] [10]`` and ``[2048] [5]`` merged into ``[2048] [10]`` with ``Bytes`` 15);
without it, merging gives what flow-pipeline's README shows: one row per (5-minute slot, SrcAS, DstAS)
with the EtherType sums nested.

``init`` creates what is missing and never drops: a table that exists keeps its data, a missing column is
added, and a column someone changed is one error naming it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from flowscope.db.urls import shown_url
from flowscope.errors import FlowscopeError
from flowscope.schema import FLOWS, Column, clickhouse_type, column, table_columns

SCHEME = "clickhouse"
DEFAULT_PORT = 9000
RAW_TABLE = "flows_raw"
ROLLUP_TABLE = "flows_5m"
ROLLUP_VIEW = "flows_5m_view"

# flow-pipeline's flows_raw columns in its order (catalogue names; Date is derived and comes first).
_SEED_ORDER = (
    "time_received", "time_flow_start", "sequence_num", "sampling_rate", "sampler_address", "src_addr", "dst_addr",
    "src_as", "dst_as", "etype", "proto", "src_port", "dst_port", "bytes", "packets",
)  # fmt: skip
_KEYS = frozenset({"time_received"})
"""Catalogue columns that key ``flows_raw`` (ORDER BY): never Nullable (ClickHouse refuses nullable sort keys)."""


@dataclass(frozen=True)
class ClickHouseURL:
    """``clickhouse://[USER[:PASSWORD]@]HOST[:PORT]/DB[?name=value...]`` taken apart."""

    host: str
    port: int
    database: str
    user: str = "default"
    password: str = ""
    params: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, url: str) -> ClickHouseURL:
        parts = urlsplit(url)
        if parts.scheme != SCHEME or not parts.hostname:
            raise FlowscopeError(f"not a ClickHouse URL: {shown_url(url)!r} (expected clickhouse://HOST:9000/DB)")
        database = unquote(parts.path.strip("/")) or "default"
        if "/" in database or "`" in database or "\\" in database:  # `...` quotes names; a backslash escapes in it
            raise FlowscopeError(f"bad ClickHouse database name {database!r} in {shown_url(url)!r}")
        try:
            port = parts.port or DEFAULT_PORT
        except ValueError as exc:
            raise FlowscopeError(f"bad port in {shown_url(url)!r}") from exc
        return cls(
            host=parts.hostname,
            port=port,
            database=database,
            user=unquote(parts.username) if parts.username else "default",
            password=unquote(parts.password) if parts.password else "",
            params=dict(parse_qsl(parts.query, keep_blank_values=True)),
        )

    @property
    def where(self) -> str:
        return f"ClickHouse at {self.host}:{self.port}"


def connect(url: ClickHouseURL, *, database: bool = True, timeout: float = 10.0) -> Any:
    """A connected clickhouse-driver ``Client`` (``database=False``: the server's default database, for
    creating the URL's). Unreachable server, refused user and missing database are one-line errors."""
    from clickhouse_driver import Client

    # The driver logs every failed connection attempt with a traceback; the failure itself becomes one error.
    logging.getLogger("clickhouse_driver").setLevel(logging.CRITICAL)
    client = Client(
        url.host,
        port=url.port,
        database=url.database if database else "default",
        user=url.user,
        password=url.password,
        connect_timeout=timeout,
        send_receive_timeout=max(timeout, 300.0),
        client_name="flowscope",
    )
    execute(client, url, "SELECT 1")
    return client


# Server error codes that are the user's to fix (ClickHouse's ErrorCodes).
_UNKNOWN_DATABASE = 81
_AUTHENTICATION = frozenset({192, 193, 194, 516})  # UNKNOWN_USER, WRONG_PASSWORD, REQUIRED_PASSWORD, AUTH FAILED


def execute(client: Any, url: ClickHouseURL, query: str, params: Any = None, **options: Any) -> Any:
    """``client.execute`` with the server's refusals and an unreachable server as ``FlowscopeError``."""
    from clickhouse_driver import errors

    try:
        return client.execute(query, params, **options)
    except errors.ServerException as exc:
        raise server_error(url, exc) from None
    except (errors.NetworkError, errors.SocketTimeoutError, OSError, EOFError) as exc:
        raise FlowscopeError(f"cannot reach {url.where}: {first_line(exc)}") from None


def server_error(url: ClickHouseURL, exc: Any) -> FlowscopeError:
    code = getattr(exc, "code", None)
    if code in _AUTHENTICATION:
        return FlowscopeError(f"{url.where} refused user {url.user!r}: wrong user or password")
    if code == _UNKNOWN_DATABASE:
        return FlowscopeError(f"{url.where} has no database {url.database!r} (create it: flowscope db init URL)")
    return FlowscopeError(f"{url.where}: {first_line(exc)}")


def first_line(exc: BaseException) -> str:
    """An exception's message without the server's stack trace."""
    text = getattr(exc, "message", None) or str(exc)
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    line = lines[0] if lines else type(exc).__name__
    line = re.sub(r"^Code: \d+\.\s*", "", line)
    if not line and len(lines) > 1:
        line = lines[1]
    return line.removeprefix("DB::Exception: ").split(" Stack trace:")[0].strip()


@dataclass(frozen=True)
class RawColumn:
    """A ``flows_raw`` column: its name and type there and the catalogue column it holds (None: ``Date``)."""

    name: str
    type: str
    source: Column | None


def raw_columns() -> tuple[RawColumn, ...]:
    """``flows_raw``'s columns, rendered from the catalogue."""
    catalogue = table_columns(FLOWS)
    ordered = [column(name, FLOWS) for name in _SEED_ORDER]
    ordered += [c for c in catalogue if c.name not in _SEED_ORDER]
    out = [RawColumn("Date", "Date", None)]
    for c in ordered:
        assert c is not None
        ch_type = clickhouse_type(c.arrow_type, c.role, nullable=False) if c.name in _KEYS else c.clickhouse
        out.append(RawColumn(c.pipeline_name, ch_type, c))
    return tuple(out)


def _plain(name: str) -> str:
    """The non-nullable ClickHouse type of a catalogue flow column (roll-up keys and sums)."""
    c = column(name, FLOWS)
    assert c is not None
    return clickhouse_type(c.arrow_type, c.role, nullable=False)


def rollup_columns() -> tuple[tuple[str, str], ...]:
    """``flows_5m``'s columns as they appear in ``system.columns`` (Nested columns are arrays there)."""
    return (
        ("Date", "Date"),
        ("Timeslot", "DateTime"),
        ("SrcAS", _plain("src_as")),
        ("DstAS", _plain("dst_as")),
        ("ETypeMap.EType", f"Array({_plain('etype')})"),
        ("ETypeMap.Bytes", "Array(UInt64)"),
        ("ETypeMap.Packets", "Array(UInt64)"),
        ("ETypeMap.Count", "Array(UInt64)"),
        ("Bytes", _plain("bytes")),
        ("Packets", _plain("packets")),
        ("Count", "UInt64"),
    )


def _ttl(days: int | None) -> str:
    return f"\nTTL Date + INTERVAL {days} DAY" if days else ""


def raw_table_ddl(
    database: str, ttl_days: int | None = None, *, table: str = RAW_TABLE, engine: str = "MergeTree()", on: str = ""
) -> str:
    """``flows_raw`` (or, in a cluster, each node's ``flows_raw_local``: ``engine`` replicated, ``on`` the
    ``ON CLUSTER`` clause)."""
    columns = ",\n    ".join(f"`{c.name}` {c.type}" for c in raw_columns())
    return (
        f"CREATE TABLE IF NOT EXISTS `{database}`.{table}{on} (\n    {columns}\n)\n"
        f"ENGINE = {engine} PARTITION BY Date ORDER BY TimeReceived{_ttl(ttl_days)}"
    )


def rollup_table_ddl(
    database: str,
    ttl_days: int | None = None,
    *,
    table: str = ROLLUP_TABLE,
    engine: str = "SummingMergeTree()",
    on: str = "",
) -> str:
    plain = {name: ch_type for name, ch_type in rollup_columns() if "." not in name}
    return (
        f"CREATE TABLE IF NOT EXISTS `{database}`.{table}{on} (\n"
        f"    Date Date,\n    Timeslot DateTime,\n    SrcAS {plain['SrcAS']},\n    DstAS {plain['DstAS']},\n"
        f"    ETypeMap Nested(EType {_plain('etype')}, Bytes UInt64, Packets UInt64, Count UInt64),\n"
        f"    Bytes {plain['Bytes']},\n    Packets {plain['Packets']},\n    Count UInt64\n)\n"
        f"ENGINE = {engine} PARTITION BY Date ORDER BY (Date, Timeslot, SrcAS, DstAS)"
        f"{_ttl(ttl_days)}"
    )


ROLLUP_INPUTS = ("Date", "TimeReceived", "SrcAS", "DstAS", "EType", "Bytes", "Packets")
"""The ``flows_raw`` columns the roll-up reads."""


def rollup_view_ddl(
    database: str,
    *,
    view: str = ROLLUP_VIEW,
    source: str = RAW_TABLE,
    inputs: Mapping[str, str] | None = None,
    target: str = ROLLUP_TABLE,
    on: str = "",
) -> str:
    """The materialized view that rolls every insert into ``source`` (``flows_raw``) up into ``flows_5m``;
    ``inputs`` gives another source's expression for each of ``ROLLUP_INPUTS`` (the Kafka table's fields).

    One level of SELECT, as flow-pipeline's: old servers run a view's outermost query over the inserted
    block, so a subquery would never see it. An alias named like a column replaces that column everywhere
    else in the query, so the one-element ``ETypeMap`` arrays are built from the totals' aliases
    (``[Bytes]`` is the group's ``sum(ifNull(Bytes, 0))``); SummingMergeTree adds the arrays up per
    EtherType when parts merge. Values are cast to ``flows_5m``'s types: 18.16's views do not convert.
    """
    i = dict(inputs) if inputs is not None else {name: name for name in ROLLUP_INPUTS}
    etype = _plain("etype")
    return (
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS `{database}`.{view}{on} TO `{database}`.{target} AS\n"
        f"SELECT {i['Date']} AS Date,\n"
        f"    toStartOfFiveMinute(toDateTime(intDiv({i['TimeReceived']}, 1000000000))) AS Timeslot,\n"
        f"    ifNull({i['SrcAS']}, 0) AS SrcAS, ifNull({i['DstAS']}, 0) AS DstAS,\n"
        f"    [CAST(ifNull({i['EType']}, 0) AS {etype})] AS `ETypeMap.EType`, [Bytes] AS `ETypeMap.Bytes`,\n"
        "    [Packets] AS `ETypeMap.Packets`, [Count] AS `ETypeMap.Count`,\n"
        f"    sum(ifNull({i['Bytes']}, 0)) AS Bytes, sum(ifNull({i['Packets']}, 0)) AS Packets, count() AS Count\n"
        f"FROM `{database}`.{source}\n"
        "GROUP BY Date, Timeslot, SrcAS, DstAS, `ETypeMap.EType`"
    )


def single_node_ddl(database: str, raw_ttl_days: int | None = None, rollup_ttl_days: int | None = None) -> list[str]:
    """What ``init`` creates on one server (``db init --print``), TTLs as given."""
    return [
        raw_table_ddl(database, raw_ttl_days),
        rollup_table_ddl(database, rollup_ttl_days),
        rollup_view_ddl(database),
    ]


LOCAL = "_local"
"""In a cluster each node's tables carry this suffix; the Distributed tables over them take the plain names, so
the ``clickhouse://`` destination, ``top --from`` and flow-pipeline's queries work unchanged."""
_CLUSTER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def cluster_ddl(
    database: str, cluster: str, *, raw_ttl_days: int | None = None, rollup_ttl_days: int | None = None
) -> list[str]:
    """The statements of ``db init --cluster CLUSTER``, each ``ON CLUSTER`` (distributed DDL: every node runs it).

    - ``flows_raw_local`` (ReplicatedMergeTree) and ``flows_5m_local`` (ReplicatedSummingMergeTree) on every
      node: the replicas of a shard share the ZooKeeper path ``/clickhouse/tables/{shard}/DB/TABLE``, and the
      server's ``{shard}`` and ``{replica}`` macros tell them apart;
    - the roll-up view from ``flows_raw_local`` into ``flows_5m_local`` on every node: it fires on the replica an
      insert reaches and the rolled-up rows replicate like any other (the cluster's shards need
      ``<internal_replication>true</internal_replication>``, so an insert reaches one replica per shard);
    - ``flows_raw`` and ``flows_5m``: Distributed tables over them. An insert into ``flows_raw`` is spread over
      the shards at random (even load; no query needs a flow's rows on one shard), a query reads every shard;
      reports sum ``flows_5m`` as they do on one server (SummingMergeTree merges parts eventually).
    """
    if not _CLUSTER_NAME.match(cluster):
        raise FlowscopeError(f"bad ClickHouse cluster name {cluster!r} (letters, digits and _ only)")
    on = f" ON CLUSTER `{cluster}`"
    raw_local, rollup_local = RAW_TABLE + LOCAL, ROLLUP_TABLE + LOCAL

    def replicated(engine: str, table: str) -> str:
        return f"Replicated{engine}('/clickhouse/tables/{{shard}}/{database}/{table}', '{{replica}}')"

    def distributed(table: str, local: str, sharding: str) -> str:
        return (
            f"CREATE TABLE IF NOT EXISTS `{database}`.{table}{on} AS `{database}`.{local}\n"
            f"ENGINE = Distributed(`{cluster}`, `{database}`, {local}{sharding})"
        )

    return [
        f"CREATE DATABASE IF NOT EXISTS `{database}`{on}",
        raw_table_ddl(database, raw_ttl_days, table=raw_local, engine=replicated("MergeTree", raw_local), on=on),
        rollup_table_ddl(
            database, rollup_ttl_days, table=rollup_local, engine=replicated("SummingMergeTree", rollup_local), on=on
        ),
        rollup_view_ddl(database, source=raw_local, target=rollup_local, on=on),
        distributed(RAW_TABLE, raw_local, ", rand()"),
        distributed(ROLLUP_TABLE, rollup_local, ""),
    ]


def init_cluster(
    url: ClickHouseURL, cluster: str, *, raw_ttl_days: int | None = None, rollup_ttl_days: int | None = None
) -> InitReport:
    """Run ``cluster_ddl`` through the server of ``url`` (any node of the cluster). Each statement creates what is
    missing on every node and waits until every node has run it (distributed DDL)."""
    statements = cluster_ddl(url.database, cluster, raw_ttl_days=raw_ttl_days, rollup_ttl_days=rollup_ttl_days)
    report = InitReport()
    client = connect(url, database=False)
    try:
        if (raw_ttl_days or rollup_ttl_days) and _version(client, url) < TTL_SINCE:
            raise FlowscopeError(f"{url.where} has no table TTL (ClickHouse 19.6 or later): leave out the TTL options")
        known = {row[0] for row in execute(client, url, "SELECT cluster FROM system.clusters")}
        if cluster not in known:
            raise FlowscopeError(
                f"{url.where} knows no cluster {cluster!r} (its remote_servers: {', '.join(sorted(known)) or 'none'})"
            )
        before = _existing_tables(client, url)
        for statement in statements:
            execute(client, url, statement)
        after = _existing_tables(client, url)
        report.created = [f"{url.database}.{name} on cluster {cluster}" for name in sorted(after - before)]
    finally:
        client.disconnect()
    return report


def _version(client: Any, url: ClickHouseURL) -> tuple[int, ...]:
    text = execute(client, url, "SELECT version()")[0][0]
    return tuple(int(part) for part in text.split(".")[:2] if part.isdigit())


TTL_SINCE = (19, 6)
"""The first ClickHouse release with table TTL (``TTL Date + INTERVAL N DAY``); 18.16 has none."""


@dataclass
class InitReport:
    """What ``init`` did."""

    created: list[str] = field(default_factory=list)
    added_columns: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def init(
    url: ClickHouseURL,
    *,
    raw_ttl_days: int | None = None,
    rollup_ttl_days: int | None = None,
    kafka: str | None = None,
) -> InitReport:
    """Create the database, ``flows_raw``, ``flows_5m`` and its view, and the lake's roll-ups where missing; add
    missing columns; refuse (one error naming it) a column whose type someone changed. Never drops anything.
    ``rollup_ttl_days`` is the TTL of ``flows_5m`` and the ``rollup_*`` tables, at least ``raw_ttl_days``
    (``stores.retention_problem``); TTLs apply to the tables created here. ``kafka`` (``BROKER/TOPIC``): also
    the Kafka-engine table and its view into ``flows_raw`` (``db.clickhouse_kafka``)."""
    from flowscope.transforms.rollups.stores import retention_problem

    problem = retention_problem(raw_ttl_days, rollup_ttl_days)
    if problem is not None:
        raise FlowscopeError(f"--rollup-ttl-days {rollup_ttl_days}: {problem}")
    report = InitReport()
    client = connect(url, database=False)
    try:
        db = url.database
        if not execute(client, url, "SELECT count() FROM system.databases WHERE name = %(db)s", {"db": db})[0][0]:
            execute(client, url, f"CREATE DATABASE IF NOT EXISTS `{db}`")
            report.created.append(f"database {db}")
        ttl_ok = _version(client, url) >= TTL_SINCE
        if (raw_ttl_days or rollup_ttl_days) and not ttl_ok:
            report.notes.append(
                "this server has no table TTL (ClickHouse 19.6 or later): tables created without it; drop old "
                "partitions with ALTER TABLE ... DROP PARTITION"
            )
            raw_ttl_days = rollup_ttl_days = None
        existing = _existing_tables(client, url)
        expected = {
            RAW_TABLE: ([(c.name, c.type) for c in raw_columns()], raw_table_ddl(db, raw_ttl_days)),
            ROLLUP_TABLE: (list(rollup_columns()), rollup_table_ddl(db, rollup_ttl_days)),
        }
        for table, (columns, ddl) in expected.items():
            if table in existing:
                report.added_columns += _reconcile(client, url, table, columns)
            else:
                execute(client, url, ddl)
                report.created.append(f"table {db}.{table}")
        if ROLLUP_VIEW not in existing:
            execute(client, url, rollup_view_ddl(db))
            report.created.append(f"materialized view {db}.{ROLLUP_VIEW}")
        _init_rollups(client, url, existing, report, rollup_ttl_days)
        if kafka is not None:
            _init_kafka(client, url, kafka, existing, report)
    finally:
        client.disconnect()
    return report


def _init_rollups(
    client: Any, url: ClickHouseURL, existing: set[str], report: InitReport, ttl_days: int | None
) -> None:
    """The lake's roll-ups (``transforms.rollups.stores``): tables, their views from ``flows_raw``, and, for a
    table created on a database that holds flows, its rows from them (inserts during ``init`` may count twice:
    run it before the writers)."""
    from flowscope.transforms.rollups import stores

    names = stores.pipeline_names()
    raw_rows = execute(client, url, f"SELECT count() FROM `{url.database}`.{RAW_TABLE}")[0][0]
    for rollup in stores.store_rollups():
        table = stores.store_table(rollup.name)
        if table in existing:
            report.added_columns += _reconcile(client, url, table, stores.clickhouse_columns(rollup))
        else:
            execute(client, url, stores.clickhouse_table_ddl(url.database, rollup, ttl_days))
            report.created.append(f"table {url.database}.{table}")
        view = stores.clickhouse_view_name(rollup)
        if view not in existing:
            execute(client, url, stores.clickhouse_view_ddl(url.database, rollup, names))
            report.created.append(f"materialized view {url.database}.{view}")
            if raw_rows:
                columns = ", ".join(f"`{name}`" for name, _ in stores.clickhouse_columns(rollup))
                select = stores.clickhouse_select(url.database, rollup, names)
                execute(client, url, f"INSERT INTO `{url.database}`.{table} ({columns}) {select}")
                report.notes.append(f"{table} filled from the {raw_rows:,} flows in {RAW_TABLE}")


def _init_kafka(client: Any, url: ClickHouseURL, kafka: str, existing: set[str], report: InitReport) -> None:
    from flowscope.db import clickhouse_kafka as ck

    brokers, topic = ck.parse_topic(kafka)
    protobuf = bool(
        execute(client, url, "SELECT count() FROM system.formats WHERE name = 'Protobuf' AND is_input")[0][0]
    )
    if ck.KAFKA_TABLE not in existing:
        execute(client, url, ck.kafka_table_ddl(url.database, brokers, topic, protobuf=protobuf))
        report.created.append(f"Kafka table {url.database}.{ck.KAFKA_TABLE} ({brokers} topic {topic})")
        report.notes.append(
            "messages are read as Protobuf: put flow.proto (flowscope db flow-proto) in the server's format_schema_path"
            if protobuf
            else "this server has no Protobuf input format (ClickHouse 19.x or later): messages are read as "
            "JSONEachRow with FlowMessage's field names"
        )
    if ck.KAFKA_VIEW not in existing:
        execute(client, url, ck.kafka_view_ddl(url.database))
        report.created.append(f"materialized view {url.database}.{ck.KAFKA_VIEW}")
    if ck.KAFKA_ROLLUP_VIEW not in existing:  # views do not cascade on 18.16: the roll-up reads the messages too
        execute(client, url, rollup_view_ddl(url.database, view=ck.KAFKA_ROLLUP_VIEW, source=ck.KAFKA_TABLE,
                                             inputs=ck.ROLLUP_INPUTS))  # fmt: skip
        report.created.append(f"materialized view {url.database}.{ck.KAFKA_ROLLUP_VIEW}")


def _existing_tables(client: Any, url: ClickHouseURL) -> set[str]:
    rows = execute(client, url, "SELECT name FROM system.tables WHERE database = %(db)s", {"db": url.database})
    return {name for (name,) in rows}


def table_types(client: Any, url: ClickHouseURL, table: str) -> dict[str, str]:
    """Column name -> type of an existing table."""
    rows = execute(
        client,
        url,
        "SELECT name, type FROM system.columns WHERE database = %(db)s AND table = %(table)s",
        {"db": url.database, "table": table},
    )
    return dict(rows)


def check_columns(
    table: str, found: Mapping[str, str], columns: list[tuple[str, str]], url: ClickHouseURL
) -> list[tuple[str, str]]:
    """The expected ``columns`` missing from ``found``; a column present with another type is an error naming it."""
    for name, ch_type in columns:
        if name in found and found[name] != ch_type:
            raise FlowscopeError(
                f"{url.where}: column {url.database}.{table}.{name} is {found[name]}, flowscope writes {ch_type} "
                "(changed by someone else? change it back or use another database)"
            )
    return [(name, ch_type) for name, ch_type in columns if name not in found]


def _reconcile(client: Any, url: ClickHouseURL, table: str, columns: list[tuple[str, str]]) -> list[str]:
    missing = check_columns(table, table_types(client, url, table), columns, url)
    added = []
    for name, ch_type in missing:
        if "." in name:  # a Nested subcolumn cannot be added alone: the whole table predates this layout
            raise FlowscopeError(f"{url.where}: {url.database}.{table} has no column {name} (an older layout?)")
        execute(client, url, f"ALTER TABLE `{url.database}`.{table} ADD COLUMN `{name}` {ch_type}")
        added.append(f"{table}.{name}")
    return added
