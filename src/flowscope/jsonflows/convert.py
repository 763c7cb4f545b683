"""One parsed chunk of JSON lines (a column per known key) -> a flow table, with unreadable rows per reason.

Values are converted column-wise with the flow-CSV converters (``csvflows.values``): a column may arrive as
numbers or as text (GoFlow2's renderers can be switched off, and a chunk whose types differ from the
family's is parsed with inferred types), and every converter takes both.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flowscope.arrays import contiguous
from flowscope.csvflows import values
from flowscope.csvflows.convert import Converted, first_reasons
from flowscope.jsonflows.dialects import JsonDialect, Kind
from flowscope.schema import FLOW_SCHEMA, TIMESTAMP

ETHERTYPES = {"ipv4": 0x0800, "ipv6": 0x86DD, "arp": 0x0806}
FLOW_TYPES = {"sflow_5": "sflow_v5", "netflow_v5": "netflow_v5", "netflow_v9": "netflow_v9", "ipfix": "ipfix"}
"""GoFlow2's FlowType names -> the ``type`` values flowscope's own sources give (FLOWUNKNOWN: null)."""

ZERO_IS_UNKNOWN = frozenset({"sampling_rate"})
"""GoFlow2 columns whose 0 means "not known" (protobuf cannot tell 0 from absent; the codec does the same)."""

PARSE_TYPES = {
    Kind.NUMBER: pa.int64(),
    Kind.TEXT: pa.string(),
    Kind.ADDRESS: pa.string(),
    Kind.MAC: pa.string(),
    Kind.ISO_TIME: pa.string(),
    Kind.NS_TIME: pa.int64(),
    Kind.PROTO: pa.string(),
    Kind.ETYPE: pa.string(),
    Kind.FLOW_TYPE: pa.string(),
}


def parse_schema(dialect: JsonDialect, flowscope_numbers: bool) -> pa.Schema:
    """The types the family's keys are parsed as (``flowscope_numbers``: proto and etype as numbers, as
    flowscope writes them)."""
    fields = []
    for key, (_, kind) in dialect.keys.items():
        parsed = PARSE_TYPES[kind]
        if flowscope_numbers and kind in (Kind.PROTO, Kind.ETYPE):
            parsed = pa.int64()
        fields.append(pa.field(key, parsed))
    return pa.schema(fields)


def _empty_is_null(text: pa.Array) -> pa.Array:
    if not pa.types.is_string(text.type):
        return text
    return pc.if_else(pc.equal(text, ""), pa.scalar(None, text.type), text)


def _lookup(text: pa.Array, names: dict[str, object], out_type: pa.DataType) -> pa.Array:
    """Each text's value in ``names`` (compared in lower case); null where it has none."""
    found = pc.index_in(pc.utf8_lower(text), value_set=pa.array(list(names)))
    return pc.take(pa.array(list(names.values()), out_type), found)


def _names(raw: pa.Array, names: dict[str, object], out_type: pa.DataType) -> values.Converted:
    """Numbers as they are, names (any case) through ``names``; ``""`` is unknown."""
    if not pa.types.is_string(raw.type):
        return values.to_unsigned(raw, out_type)
    text = _empty_is_null(raw)
    named = _lookup(text, names, out_type)
    numbered, _ = values.to_unsigned(pc.if_else(pc.is_null(named), text, pa.scalar(None, pa.string())), out_type)
    converted = pc.coalesce(named, numbered)
    return converted, _bad(text, converted)


def _bad(source: pa.Array, converted: pa.Array) -> np.ndarray | None:
    mask = pc.and_(pc.is_valid(source), pc.is_null(converted)).to_numpy(zero_copy_only=False)
    return mask if mask.any() else None


def _convert(column: str, kind: Kind, raw: pa.Array) -> values.Converted:
    if kind is Kind.NUMBER:
        return values.to_unsigned(raw, FLOW_SCHEMA.field(column).type)
    if kind is Kind.TEXT:
        return raw.cast(pa.string()), None
    if kind is Kind.ADDRESS:
        text = _empty_is_null(raw)
        return values.to_address(text) if pa.types.is_string(text.type) else (text, _bad(text, pa.nulls(len(text))))
    if kind is Kind.MAC:
        return values.to_mac(raw.cast(pa.string()))
    if kind is Kind.ISO_TIME:
        return values.to_timestamp(raw.cast(pa.string()), (), "UTC")
    if kind is Kind.NS_TIME:
        nanos, bad = values.to_unsigned(raw, pa.int64())
        return pc.if_else(pc.equal(nanos, 0), pa.scalar(None, TIMESTAMP), nanos.cast(TIMESTAMP)), bad
    if kind is Kind.PROTO:
        protocols: dict[str, object] = dict(values.PROTOCOL_NUMBERS)
        return _names(raw, protocols, pa.uint8())
    if kind is Kind.ETYPE:
        return _names(raw, dict(ETHERTYPES), pa.uint16())
    text = _empty_is_null(raw.cast(pa.string()))  # Kind.FLOW_TYPE
    converted = _lookup(text, dict(FLOW_TYPES), pa.string())
    stated = pc.if_else(pc.equal(pc.utf8_lower(text), "flowunknown"), pa.scalar(None, pa.string()), text)
    return converted, _bad(stated, converted)


def convert(raw: pa.Table, dialect: JsonDialect) -> Converted:
    """Map a parsed chunk (columns named by JSON keys, any of the family's keys absent) onto flow columns."""
    columns: dict[str, pa.Array] = {}
    bad_by_reason: list[tuple[str, np.ndarray, pa.Array]] = []
    for key in raw.column_names:
        if key not in dialect.keys:
            continue
        column, kind = dialect.keys[key]
        source = contiguous(raw.column(key))
        if pa.types.is_null(source.type):
            continue
        converted, bad = _convert(column, kind, source)
        if dialect.name == "goflow2" and column in ZERO_IS_UNKNOWN:
            converted = pc.if_else(pc.equal(converted, 0), pa.scalar(None, converted.type), converted)
        columns[column] = converted
        if bad is not None:
            bad_by_reason.append((f"unreadable {key} value", bad, source))
    return Converted(pa.table(columns) if columns else pa.table({}), first_reasons(bad_by_reason, raw.num_rows))
