import re

import pyarrow as pa
import pytest
from tests.conftest import shared_data

from flowscope.errors import FlowscopeError
from flowscope.schema import (
    ADDRESS,
    FLOW_SCHEMA,
    FLOWS,
    INTERFACE_COUNTERS,
    INTERFACE_COUNTERS_SCHEMA,
    TABLES,
    Role,
    clickhouse_columns,
    column,
    columns_with_role,
    conform,
    postgres_columns,
    role_of,
    table_columns,
)


def test_conform_orders_casts_fills_and_keeps_extras():
    table = pa.table({"label": ["web"], "packets": pa.array([3], pa.int64()), "src_port": [443]})
    out = conform(table)
    assert out.schema.names[: len(FLOW_SCHEMA)] == FLOW_SCHEMA.names
    assert out.schema.names[-1] == "label"
    assert out.column("packets").type == pa.uint64()
    assert out.column("bytes_rev").to_pylist() == [0]
    assert out.column("dst_port").to_pylist() == [None]


def test_conform_without_extras_is_exactly_the_schema():
    out = conform(pa.table({"label": ["x"]}), keep_extra=False)
    assert out.schema == FLOW_SCHEMA


def test_conform_refuses_values_that_do_not_fit():
    with pytest.raises(pa.ArrowInvalid):
        conform(pa.table({"src_port": [70000]}))


# The lake's column names and types: changing one breaks every lake, export and database already written.
PINNED_FLOWS = [
    ("type", "string"), ("time_received", "timestamp[ns, tz=UTC]"), ("time_flow_start", "timestamp[ns, tz=UTC]"),
    ("time_flow_end", "timestamp[ns, tz=UTC]"), ("sampler_address", "fixed_size_binary[16]"),
    ("observation_domain_id", "uint32"), ("sequence_num", "uint32"), ("sampling_rate", "uint64"),
    ("src_addr", "fixed_size_binary[16]"), ("dst_addr", "fixed_size_binary[16]"), ("src_port", "uint16"),
    ("dst_port", "uint16"), ("proto", "uint8"), ("etype", "uint16"), ("bytes", "uint64"), ("packets", "uint64"),
    ("bytes_rev", "uint64"), ("packets_rev", "uint64"), ("tcp_flags", "uint16"), ("ip_tos", "uint8"),
    ("ip_ttl", "uint8"), ("in_if", "uint32"), ("out_if", "uint32"), ("vlan_id", "uint16"), ("src_as", "uint32"),
    ("dst_as", "uint32"), ("next_hop", "fixed_size_binary[16]"), ("icmp_type", "uint8"), ("icmp_code", "uint8"),
    ("src_mac", "uint64"), ("dst_mac", "uint64"), ("community_id", "string"),
]  # fmt: skip
PINNED_INTERFACE_COUNTERS = [
    ("time_received", "timestamp[ns, tz=UTC]"), ("sampler_address", "fixed_size_binary[16]"),
    ("sub_agent_id", "uint32"), ("sequence_num", "uint32"), ("source_id_type", "uint32"),
    ("source_id_index", "uint32"), ("if_index", "uint32"), ("if_type", "uint32"), ("if_speed", "uint64"),
    ("if_direction", "uint32"), ("if_status", "uint32"), ("in_octets", "uint64"), ("in_ucast_pkts", "uint32"),
    ("in_multicast_pkts", "uint32"), ("in_broadcast_pkts", "uint32"), ("in_discards", "uint32"),
    ("in_errors", "uint32"), ("in_unknown_protos", "uint32"), ("out_octets", "uint64"), ("out_ucast_pkts", "uint32"),
    ("out_multicast_pkts", "uint32"), ("out_broadcast_pkts", "uint32"), ("out_discards", "uint32"),
    ("out_errors", "uint32"), ("promiscuous_mode", "uint32"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("schema", "pinned"), [(FLOW_SCHEMA, PINNED_FLOWS), (INTERFACE_COUNTERS_SCHEMA, PINNED_INTERFACE_COUNTERS)]
)
def test_derived_schemas_are_pinned(schema: pa.Schema, pinned: list[tuple[str, str]]) -> None:
    assert [(f.name, str(f.type)) for f in schema] == pinned
    assert all(f.nullable for f in schema) and schema.metadata is None


@pytest.mark.parametrize("table", TABLES)
def test_every_column_is_fully_declared_once(table: str) -> None:
    columns = table_columns(table)
    assert len({c.name for c in columns}) == len(columns)
    assert len({c.pipeline_name for c in columns}) == len(columns)
    for c in columns:
        assert isinstance(c.role, Role)
        assert c.unit.strip() and c.meaning.strip() and "\n" not in c.meaning, c.name
        assert c.clickhouse and c.postgres, c.name
        assert c.pipeline_name[0].isupper() and "_" not in c.pipeline_name, c.name


def test_shared_names_mean_the_same_kind_of_value_in_every_table() -> None:
    """``role_of`` looks result columns up by name alone, so a name must not change its type or role."""
    for table in TABLES:
        for c in table_columns(table):
            first = column(c.name)
            assert first is not None and (first.arrow_type, first.role) == (c.arrow_type, c.role), c.name


def _flow_message_fields() -> dict[str, tuple[str, int]]:
    """name -> (type, number) of GoFlow2's FlowMessage, read from the .proto text (comments and enums skipped)."""
    text = shared_data("goflow2-proto", "flow.proto").read_text()
    body = text[text.index("message FlowMessage") :]
    fields = re.findall(r"^\s*(?:repeated\s+)?(\w+)\s+(\w+)\s*=\s*(\d+)\s*;", body, re.MULTILINE)
    return {name: (kind, int(number)) for kind, name, number in fields}


def test_goflow2_fields_match_flow_proto() -> None:
    proto = _flow_message_fields()
    assert proto["src_addr"] == ("bytes", 6)  # the parse itself works
    declared = [c.goflow2 for c in table_columns(FLOWS) if c.goflow2 is not None]
    for field in declared:
        assert proto.get(field.name) == (field.proto_type, field.number), field
    numbers = [f.number for f in declared]
    assert len(set(numbers)) == len(numbers)
    assert all(c.goflow2 is None for c in table_columns(INTERFACE_COUNTERS))  # GoFlow2 has no counter messages
    # Every flow column GoFlow2 also has is mapped (the rest are flowscope's own).
    unmapped = {c.name for c in table_columns(FLOWS) if c.goflow2 is None}
    assert unmapped == {"bytes_rev", "packets_rev", "community_id"}


def test_flow_pipeline_names() -> None:
    expected = {
        "src_addr": "SrcAddr", "dst_addr": "DstAddr", "time_received": "TimeReceived",
        "time_flow_start": "TimeFlowStart", "sequence_num": "SequenceNum", "sampling_rate": "SamplingRate",
        "sampler_address": "SamplerAddress", "src_as": "SrcAS", "dst_as": "DstAS", "etype": "EType",
        "proto": "Proto", "src_port": "SrcPort", "dst_port": "DstPort", "bytes": "Bytes", "packets": "Packets",
    }  # fmt: skip
    assert {name: column(name, FLOWS).pipeline_name for name in expected} == expected


def test_roles_and_lookups() -> None:
    assert columns_with_role(FLOWS, Role.COUNTER) == ("bytes", "packets", "bytes_rev", "packets_rev")
    assert columns_with_role(FLOWS, Role.MAC) == ("src_mac", "dst_mac")
    assert columns_with_role(FLOWS, Role.ADDRESS) == ("sampler_address", "src_addr", "dst_addr", "next_hop")
    assert column("in_octets").role is Role.CUMULATIVE and column("in_octets", FLOWS) is None
    assert column("sequence_num", INTERFACE_COUNTERS).meaning != column("sequence_num").meaning
    assert column("no_such_column") is None
    with pytest.raises(FlowscopeError, match="no lake table"):
        table_columns("nope")


@pytest.mark.parametrize(
    ("field", "role"),
    [
        (pa.field("src_addr", ADDRESS), Role.ADDRESS),
        (pa.field("src_addr", pa.binary()), Role.ADDRESS),  # as DuckDB returns it: the name identifies it
        (pa.field("host", pa.binary()), None),  # renamed in SQL: nothing says it is an address
        (pa.field("host", ADDRESS), Role.ADDRESS),  # a 16-byte binary is an address whatever its name
        (pa.field("src_mac", pa.uint64()), Role.MAC),
        (pa.field("src_mac", pa.string()), None),  # mac_text(src_mac) AS src_mac: already text
        (pa.field("peer_mac", pa.uint64()), None),
        (pa.field("src_port", pa.int32()), Role.DIMENSION),
        (pa.field("port", pa.uint16()), None),
        (pa.field("bytes", pa.decimal128(38, 0)), Role.COUNTER),
        (pa.field("first", pa.timestamp("us", tz="UTC")), Role.TIME),
        (pa.field("time_flow_start", pa.int64()), None),  # epoch_ns(time_flow_start): a number now
    ],
)
def test_role_of_result_columns(field: pa.Field, role: Role | None) -> None:
    assert role_of(field) is role


def test_other_systems_types() -> None:
    flows = dict(postgres_columns(FLOWS))
    assert [flows[n] for n in ("src_addr", "src_mac")] == ["inet", "macaddr"]
    assert flows["time_flow_end"] == "timestamp with time zone"
    assert [flows[n] for n in ("proto", "src_port", "in_if", "bytes")] == ["smallint", "integer", "bigint", "bigint"]
    lines = clickhouse_columns(FLOWS).split(",\n")
    assert len(lines) == len(FLOW_SCHEMA)
    assert "`src_addr` Nullable(FixedString(16))" in lines and "`bytes_rev` UInt64" in lines
    assert "`time_flow_start` Nullable(UInt64)" in lines and "`src_mac` Nullable(UInt64)" in lines
    assert "`in_octets` UInt64" in clickhouse_columns(INTERFACE_COUNTERS).split(",\n")


def test_conform_zero_fills_exactly_the_never_null_flow_columns() -> None:
    never_null = [c.name for c in table_columns(FLOWS) if not c.nullable]
    assert never_null == ["bytes_rev", "packets_rev"]
    out = conform(pa.table({"src_port": [1]}))
    assert [name for name in out.column_names if out.column(name).null_count == 0] == ["src_port", *never_null]
