"""Flow-schema columns from the records of one template: element mapping, addresses, ICMP, times, sampling.

Every function here works on all records of a template in the batch at once (``Records``),
with per-record header values taken from their context rows (``Contexts``).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from flowscope import addresses
from flowscope.collect import fields as ie
from flowscope.collect.contexts import Contexts
from flowscope.collect.fields import IPFIX, V9, Kind
from flowscope.collect.records import Records, be_unsigned
from flowscope.collect.sampling import packet_interval_rate
from flowscope.collect.sections import section_columns
from flowscope.collect.state import NetflowState
from flowscope.collect.templates import DomainKey
from flowscope.diagnostics import Skips
from flowscope.schema import FLOW_SCHEMA, TIMESTAMP, conform

FLOW_TYPE = {V9: "netflow_v9", IPFIX: "ipfix"}
NTP_EPOCH_OFFSET = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01


def learn_options(records: Records, row_context: np.ndarray, context: Contexts, state: NetflowState) -> None:
    """Options data: remember announced sampling rates per (domain, sampler id) and IPFIX uptime origins."""
    domain_index = context.domain_index[row_context]
    rate = _record_rate(records)
    if rate is not None:
        sampler = _first_unsigned(records, ie.SAMPLER_ID)
        sampler_column = sampler.astype(np.int64) if sampler is not None else np.full(len(records), -1, np.int64)
        rows = np.unique(np.stack([domain_index, sampler_column, rate.astype(np.int64)], axis=1), axis=0)
        for domain, sampler_id, value in rows.tolist():
            state.sampling.learn(context.domains[domain], None if sampler_id < 0 else sampler_id, value)
    init = records.unsigned(ie.SYSTEM_INIT_MS)
    if init is not None:
        for domain, ms in np.unique(np.stack([domain_index, init.astype(np.int64)], axis=1), axis=0).tolist():
            state.learn_system_init(context.domains[domain], ms)


def _first_unsigned(records: Records, keys: tuple[ie.FieldKey, ...]) -> np.ndarray | None:
    for key in keys:
        values = records.unsigned(key)
        if values is not None:
            return values
    return None


def _record_rate(records: Records) -> np.ndarray | None:
    """A sampling rate carried in the record (0 where it says none), or None when the template carries none."""
    rate = _first_unsigned(records, ie.SAMPLING_INTERVAL)
    if rate is None:
        interval, space = records.unsigned(ie.PACKET_INTERVAL), records.unsigned(ie.PACKET_SPACE)
        if interval is not None and space is not None:
            rate = packet_interval_rate(interval, space)
    if rate is None:
        size, population = records.unsigned(ie.SAMPLING_SIZE), records.unsigned(ie.SAMPLING_POPULATION)
        if size is not None and population is not None:
            rate = np.where(size > 0, population // np.maximum(size, 1), 0).astype(np.uint64)
    return rate


_NUMPY_TYPES = {pa.uint8(): np.uint8, pa.uint16(): np.uint16, pa.uint32(): np.uint32, pa.uint64(): np.uint64}


def flow_table(
    records: Records, row_context: np.ndarray, context: Contexts, state: NetflowState, skips: Skips
) -> pa.Table:
    """The flow-schema table of one template's records; ``row_context`` is each record's context row."""
    n = len(records)
    version = int(context.version[row_context[0]])
    columns: dict[str, pa.Array] = {
        "type": pa.repeat(pa.scalar(FLOW_TYPE[version]), n),
        "time_received": pa.array(context.received_ns[row_context], TIMESTAMP),
        "sampler_address": addresses.from_ipv6_bytes(context.exporter[row_context]),
        "observation_domain_id": pa.array(context.domain[row_context]),
        "sequence_num": pa.array(context.sequence[row_context]),
    }
    for column, (kind, keys) in ie.COLUMN_SOURCES.items():
        for key in keys:
            length = records.field_length(key)
            if length is not None and (length == 6 if kind is Kind.MAC else 1 <= length <= 8):
                target = _NUMPY_TYPES[FLOW_SCHEMA.field(column).type]
                columns[column] = pa.array(be_unsigned(records.bytes_of(key)).astype(target))
                break
    for column, candidates in ie.ADDRESS_SOURCES.items():
        address = _address(records, candidates)
        if address is not None:
            columns[column] = address
    if "etype" not in columns:
        etype = _etype(records)
        if etype is not None:
            columns["etype"] = pa.array(etype)
    for column, values in section_columns(records, skips, state.tunnels).items():
        columns.setdefault(column, values)  # elements the exporter sent win over what the section shows
    if "proto" not in columns:  # softflowd's ICMP templates carry icmpTypeCode but no protocol
        for key, proto in (((0, 32), 1), ((0, 139), 58)):
            if records.has(key):
                columns["proto"] = pa.array(np.full(len(records), proto, np.uint8))
    columns.update(_icmp(records, columns))
    columns.update(_times(records, row_context, context, version, state.system_init_ms))
    rate, known = state.sampling.resolve(
        context.domains,
        context.domain_index[row_context],
        _record_rate(records),
        _first_unsigned(records, ie.SAMPLER_ID),
    )
    columns["sampling_rate"] = pa.array(rate, pa.uint64(), mask=~known)
    return conform(pa.table(columns), keep_extra=False)


def _address(records: Records, candidates: tuple[tuple[ie.FieldKey, Kind], ...]) -> pa.Array | None:
    """The first usable address element; a template with both families picks per record the non-zero one."""
    found: list[tuple[Kind, np.ndarray]] = []
    for key, kind in candidates:
        width = 4 if kind is Kind.IPV4 else 16
        if records.field_length(key) != width:
            continue
        found.append((kind, records.bytes_of(key)))
        if len(found) == 2:
            break
    if not found:
        return None
    matrices = [_mapped(raw) if kind is Kind.IPV4 else np.ascontiguousarray(raw) for kind, raw in found]
    matrix = matrices[0]
    if len(found) == 2:
        use_other = ~found[0][1].any(axis=1, keepdims=True) & found[1][1].any(axis=1, keepdims=True)
        matrix = np.where(use_other, matrices[1], matrix)
    return addresses.from_ipv6_bytes(matrix)


def _mapped(ipv4: np.ndarray) -> np.ndarray:
    """(n, 4) IPv4 bytes -> (n, 16) IPv4-mapped bytes."""
    out = np.zeros((ipv4.shape[0], 16), np.uint8)
    out[:, 10:12] = 0xFF
    out[:, 12:] = ipv4
    return out


def _etype(records: Records) -> np.ndarray | None:
    """EtherType from ipVersion, else from which address family the template carries."""
    version = records.unsigned(ie.IP_VERSION)
    if version is not None:
        return np.select([version == 4, version == 6], [0x0800, 0x86DD], 0).astype(np.uint16)
    v4 = records.field_length((0, 8)) == 4 or records.field_length((0, 12)) == 4
    v6 = records.field_length((0, 27)) == 16 or records.field_length((0, 28)) == 16
    if v4 and v6:
        v6_rows = records.bytes_of((0, 27)).any(axis=1) if records.has((0, 27)) else np.zeros(len(records), bool)
        return np.where(v6_rows, 0x86DD, 0x0800).astype(np.uint16)
    if v4 or v6:
        return np.full(len(records), 0x0800 if v4 else 0x86DD, np.uint16)
    return None


def _icmp(records: Records, columns: dict[str, pa.Array]) -> dict[str, pa.Array]:
    """ICMP type/code from icmpTypeCode (32/139) or icmpType/Code, else from the destination port by convention."""
    combined = _first_unsigned(records, ie.ICMP_TYPE_CODE)
    icmp_type = _first_unsigned(records, ie.ICMP_TYPE)
    icmp_code = _first_unsigned(records, ie.ICMP_CODE)
    if combined is None and icmp_type is None:
        proto, port = columns.get("proto"), columns.get("dst_port")
        if proto is None or port is None:
            return {}
        proto_values = proto.to_numpy(zero_copy_only=False)
        combined = port.to_numpy(zero_copy_only=False).astype(np.uint64)
        is_icmp = (proto_values == 1) | (proto_values == 58)
        mask = ~is_icmp
        return {
            "icmp_type": pa.array((combined >> 8).astype(np.uint8), mask=mask),
            "icmp_code": pa.array((combined & 0xFF).astype(np.uint8), mask=mask),
        }
    if combined is not None:
        icmp_type, icmp_code = combined >> 8, combined & 0xFF
    assert icmp_type is not None, "without icmpTypeCode there is an icmpType (both absent returned above)"
    out = {"icmp_type": pa.array(icmp_type.astype(np.uint8))}
    if icmp_code is not None:
        out["icmp_code"] = pa.array(icmp_code.astype(np.uint8))
    return out


def _times(
    records: Records, row_context: np.ndarray, context: Contexts, version: int, system_init: dict[DomainKey, int]
) -> dict[str, pa.Array]:
    """time_flow_start/end from absolute, export-relative or sysUpTime-relative elements."""
    out: dict[str, pa.Array] = {}
    for key, (is_start, unit) in ie.ABSOLUTE_TIMES.items():
        column = "time_flow_start" if is_start else "time_flow_end"
        if column in out or records.field_length(key) is None:
            continue
        if unit == "ntp":
            raw = records.bytes_of(key)
            if raw.shape[1] != 8:
                continue
            seconds = be_unsigned(raw[:, :4]).astype(np.int64) - NTP_EPOCH_OFFSET
            fraction = be_unsigned(raw[:, 4:]).astype(np.int64)
            ns = seconds * 1_000_000_000 + ((fraction * 1_000_000_000 + (1 << 31)) >> 32)  # rounded
        else:
            value = records.unsigned(key)
            if value is None:
                continue
            ns = value.astype(np.int64) * (1_000_000_000 if unit == "s" else 1_000_000)
        out[column] = _timestamps(ns, value_present=ns > 0)
    export_ns = context.export_secs[row_context] * 1_000_000_000
    for key, is_start in ie.DELTA_TIMES_US.items():
        column = "time_flow_start" if is_start else "time_flow_end"
        value = records.unsigned(key)
        if column not in out and value is not None:
            out[column] = _timestamps(export_ns - value.astype(np.int64) * 1000)
    for key, column in ((ie.START_UPTIME_MS, "time_flow_start"), (ie.END_UPTIME_MS, "time_flow_end")):
        value = records.unsigned(key)
        if column in out or value is None:
            continue
        if version == V9:
            # milliseconds before the export, modulo 2^32 (sysUpTime wraps after 49.7 days)
            behind = ((context.uptime_ms[row_context] - value.astype(np.int64) + (1 << 31)) % (1 << 32)) - (1 << 31)
            out[column] = _timestamps(export_ns - behind * 1_000_000)
        else:
            init = records.unsigned(ie.SYSTEM_INIT_MS)
            if init is None:  # the usual case: announced once in options data
                per_domain = np.array([system_init.get(d, 0) for d in context.domains], np.int64)
                init = per_domain[context.domain_index[row_context]]
            init = init.astype(np.int64)
            out[column] = _timestamps((init + value.astype(np.int64)) * 1_000_000, value_present=init > 0)
    return out


def _timestamps(ns: np.ndarray, value_present: np.ndarray | None = None) -> pa.Array:
    mask = None if value_present is None else ~value_present
    return pa.array(ns.astype(np.int64), TIMESTAMP, mask=mask)
