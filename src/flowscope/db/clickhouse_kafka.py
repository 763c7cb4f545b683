"""ClickHouse pulling flows from Kafka itself, as flow-pipeline does: a Kafka-engine table and a view into
``flows_raw`` (``flowscope db init clickhouse://... --kafka BROKER/TOPIC``).

``flows_kafka`` has one column per GoFlow2 ``FlowMessage`` field the catalogue maps (``schema.Column.goflow2``),
named and typed as the message declares it (uint32 ``UInt32``, uint64 ``UInt64``, bytes ``String``, the
``FlowType`` enum ``Enum8``). Servers with the Protobuf input format read the messages with
``kafka_format = 'Protobuf'`` and ``kafka_schema = 'flow.proto:FlowMessage'`` (``flow_proto()`` renders that
file from the catalogue; put it in the server's ``format_schema_path``); older ones (18.16 has no Protobuf
format) read ``JSONEachRow`` messages with the same field names. ``flows_kafka_view`` converts each message
to ``flows_raw``'s row: GoFlow2's 4-byte IPv4 addresses become IPv4-mapped 16-byte ones, the flow type its
catalogue label, and the columns GoFlow2 has no field for are filled (reverse counters 0, Community ID
null): 18.16's views neither fill missing columns nor convert types, so every column is named and cast.
Views do not cascade there either (a view's insert into ``flows_raw`` does not run ``flows_5m_view``), so
``flows_kafka_5m_view`` rolls the messages up into ``flows_5m`` itself, with the same query.
"""

from __future__ import annotations

from flowscope.errors import FlowscopeError
from flowscope.schema import FLOWS, Role, table_columns

KAFKA_TABLE = "flows_kafka"
KAFKA_VIEW = "flows_kafka_view"
KAFKA_ROLLUP_VIEW = "flows_kafka_5m_view"
ROLLUP_INPUTS = {
    "Date": "toDate(intDiv(time_received_ns, 1000000000))", "TimeReceived": "time_received_ns", "SrcAS": "src_as",
    "DstAS": "dst_as", "EType": "etype", "Bytes": "bytes", "Packets": "packets",
}  # fmt: skip
"""The roll-up's inputs in FlowMessage fields (``db.clickhouse.ROLLUP_INPUTS``)."""
GROUP = "flowscope-clickhouse"

# GoFlow2's FlowMessage.FlowType (pb/flow.proto) and the catalogue's label for each.
FLOW_TYPES = (("FLOWUNKNOWN", 0, None), ("SFLOW_5", 1, "sflow_v5"), ("NETFLOW_V5", 2, "netflow_v5"),
              ("NETFLOW_V9", 3, "netflow_v9"), ("IPFIX", 4, "ipfix"))  # fmt: skip
_PROTO_TYPES = {"uint32": "UInt32", "uint64": "UInt64", "bytes": "String"}
_MAPPED_PREFIX = "unhex('00000000000000000000FFFF')"


def parse_topic(text: str) -> tuple[str, str]:
    """``BROKER[,BROKER...]/TOPIC`` -> (broker list, topic)."""
    brokers, _, topic = text.rpartition("/")
    if not brokers or not topic:
        raise FlowscopeError(f"--kafka wants BROKER/TOPIC (e.g. 127.0.0.1:9092/flows), not {text!r}")
    return brokers, topic


def _enum() -> str:
    return "Enum8(" + ", ".join(f"'{name}' = {value}" for name, value, _ in FLOW_TYPES) + ")"


def kafka_columns() -> list[tuple[str, str]]:
    """(FlowMessage field, ClickHouse type) of every catalogue flow column GoFlow2 carries."""
    out = []
    for c in table_columns(FLOWS):
        if c.goflow2 is None:
            continue
        kind = _enum() if c.goflow2.proto_type == "FlowType" else _PROTO_TYPES[c.goflow2.proto_type]
        out.append((c.goflow2.name, kind))
    return out


def flow_proto() -> str:
    """A ``flow.proto`` with the FlowMessage fields the catalogue maps (numbers and types as GoFlow2 declares them)."""
    lines = ['syntax = "proto3";', "package flowpb;", "", "message FlowMessage {", "  enum FlowType {"]
    lines += [f"    {name} = {value};" for name, value, _ in FLOW_TYPES]
    lines.append("  }")
    fields = sorted((c.goflow2 for c in table_columns(FLOWS) if c.goflow2 is not None), key=lambda f: f.number)
    lines += [f"  {f.proto_type} {f.name} = {f.number};" for f in fields]
    lines.append("}")
    return "\n".join(lines) + "\n"


def kafka_table_ddl(database: str, brokers: str, topic: str, *, protobuf: bool) -> str:
    columns = ",\n    ".join(f"`{name}` {kind}" for name, kind in kafka_columns())
    settings = [f"kafka_broker_list = '{brokers}'", f"kafka_topic_list = '{topic}'", f"kafka_group_name = '{GROUP}'"]
    settings += (
        ["kafka_format = 'Protobuf'", "kafka_schema = 'flow.proto:FlowMessage'"]
        if protobuf
        else ["kafka_format = 'JSONEachRow'"]
    )
    return (
        f"CREATE TABLE IF NOT EXISTS `{database}`.{KAFKA_TABLE} (\n    {columns}\n)\n"
        f"ENGINE = Kafka SETTINGS {', '.join(settings)}"
    )


def message_select(source: str) -> str:
    """The SELECT turning FlowMessage rows of ``source`` into ``flows_raw`` rows (the view's query)."""
    from flowscope.db.clickhouse import raw_columns

    by_field = {c.name: c.goflow2 for c in table_columns(FLOWS)}
    labels = [(value, label) for _, value, label in FLOW_TYPES if label]
    shown = []
    for raw in raw_columns():
        if raw.source is None:
            shown.append("toDate(intDiv(time_received_ns, 1000000000)) AS Date")
            continue
        field = by_field[raw.source.name]
        if field is None:  # no FlowMessage field: unknown, or 0 where the catalogue never has nulls
            value = "NULL" if raw.type.startswith("Nullable") else "0"
        elif raw.source.role is Role.ADDRESS:
            # multiIf computes every branch for every row: each must make 16 bytes from any length.
            name = field.name
            value = (f"multiIf(length({name}) = 16, toFixedString(substring({name}, 1, 16), 16), length({name}) = 4, "
                     f"toFixedString(concat({_MAPPED_PREFIX}, substring({name}, 1, 4)), 16), NULL)")  # fmt: skip
        elif field.proto_type == "FlowType":
            numbers = ", ".join(str(value) for value, _ in labels)
            names = ", ".join(f"'{label}'" for _, label in labels)
            value = f"nullIf(transform(CAST({field.name} AS Int8), [{numbers}], [{names}], ''), '')"
        else:
            value = field.name
        # 18.16's views insert without converting: every value is cast to its flows_raw column's type.
        shown.append(f"CAST({value} AS {raw.type}) AS `{raw.name}`")
    return "SELECT " + ",\n    ".join(shown) + f"\nFROM {source}"


def kafka_view_ddl(database: str) -> str:
    from flowscope.db.clickhouse import RAW_TABLE

    return (
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS `{database}`.{KAFKA_VIEW} TO `{database}`.{RAW_TABLE} AS\n"
        + message_select(f"`{database}`.{KAFKA_TABLE}")
    )
