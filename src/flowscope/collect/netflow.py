"""NetFlow v9 (RFC 3954) and IPFIX (RFC 7011) decoding, one template-driven decoder for both.

A batch is decoded in two steps. First one Python pass over datagrams and their sets:
headers are checked, templates learnt or withdrawn, and each data set is filed under its
template (or held until the template arrives). Then, per template, all its records in the
batch are decoded column by column with numpy (``flowscope.collect.records``), options data
first so the sampling rates it announces apply to the flows of the same batch.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from flowscope import addresses
from flowscope.collect import fields as ie
from flowscope.collect.datagrams import MESSAGE_SCHEMA, Datagrams, Decoded
from flowscope.collect.fields import VARIABLE_LENGTH, Kind
from flowscope.collect.records import Records, be_unsigned
from flowscope.collect.sampling import packet_interval_rate
from flowscope.collect.sections import section_columns
from flowscope.collect.simple import SimpleDatagrams, find_simple
from flowscope.collect.state import NetflowState
from flowscope.collect.templates import DomainKey, Field, HeldSet, Template, TemplateStore
from flowscope.diagnostics import Skips
from flowscope.schema import FLOW_SCHEMA, TIMESTAMP, conform, empty_flows

V9, IPFIX = 9, 10
FLOW_TYPE = {V9: "netflow_v9", IPFIX: "ipfix"}

_V9_HEADER = struct.Struct(">HHIIII")  # version, count, sysUptime ms, unix secs, sequence, source id
_IPFIX_HEADER = struct.Struct(">HHIII")  # version, length, export time, sequence, observation domain
_SET_HEADER = struct.Struct(">HH")
_PAIR = struct.Struct(">HH")
_V9_OPTIONS_HEADER = struct.Struct(">HHH")  # template id, scope length, option length (bytes)
_IPFIX_OPTIONS_HEADER = struct.Struct(">HHH")  # template id, field count, scope field count

V9_SCOPE = 1 << 32
"""Pseudo enterprise for NetFlow v9 scope fields, whose type numbers (1 System, 2 Interface...) are not IEs."""

NTP_EPOCH_OFFSET = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01


class _Batch:
    """Per-batch accumulation: one context row per message (plus one per released held set), sets per template.

    A context is (exporter, received_ns, version, domain, sequence, export_secs, uptime_ms).
    """

    def __init__(self) -> None:
        self.contexts: list[tuple] = []
        self.status: dict[int, str] = {}
        self.groups: dict[int, tuple[Template, list[int], list[bytes | memoryview]]] = {}
        self.position = 0
        """Batch position of the datagram being parsed."""
        self.changes: dict[DomainKey, list[tuple[int, dict[int, Template]]]] = {}
        """Per domain, (position, its templates afterwards) for each datagram that changed them."""
        self.simple: SimpleDatagrams | None = None
        """Context rows after ``contexts``: the simple datagrams, as arrays (their exporter in ``simple_exporters``)."""
        self.simple_exporters = np.empty((0, 16), np.uint8)
        self.simple_received = np.empty(0, np.int64)

    @property
    def rows(self) -> int:
        return len(self.contexts) + (0 if self.simple is None else len(self.simple.positions))

    def add_context(self, context: tuple) -> int:
        self.contexts.append(context)
        return len(self.contexts) - 1

    def file(self, template: Template, context_index: int, body: bytes | memoryview) -> None:
        group = self.groups.get(id(template))
        if group is None:
            group = self.groups[id(template)] = (template, [], [])
        group[1].append(context_index)
        group[2].append(body)


class _Malformed(Exception):
    """A datagram (or the rest of it) cannot be parsed; the message is the skip reason."""


def decode_templated(datagrams: Datagrams, state: NetflowState) -> Decoded:
    """Decode NetFlow v9 and IPFIX datagrams (any mix) into flows, message rows and skip counts."""
    skips = Skips(unit="datagrams")
    batch = _Batch()
    store = state.templates
    serial = state.batches = state.batches + 1
    dropped_before = store.dropped_sets
    simple, simple_templates, which = _known_simple(find_simple(datagrams.payloads), datagrams.exporters, store)
    is_simple = np.zeros(len(datagrams), bool)
    is_simple[simple.positions] = True
    message_rows = np.zeros(len(datagrams), np.int64)
    for position in np.flatnonzero(~is_simple).tolist():
        payload, received = datagrams.payloads[position], int(datagrams.received_ns[position])
        exporter = datagrams.exporters[position].tobytes()
        row = message_rows[position] = len(batch.contexts)  # the message's own context row is its first
        batch.position = position
        try:
            _parse_message(payload, exporter, received, batch, store, serial)
        except _Malformed as exc:
            reason = str(exc)
            if len(batch.contexts) == row:  # header unreadable: still one message row
                batch.add_context((exporter, received, _version_of(payload), 0, 0, 0, 0))
            batch.status[row] = reason
            skips.add(reason, example=f"exporter {addresses.format_one(exporter)}")
    message_rows[simple.positions] = _file_simple(batch, simple, simple_templates, which, datagrams, store, serial)
    skips.add("data sets dropped: template never arrived (hold buffer full)", store.dropped_sets - dropped_before)
    context = _Context.of(batch)
    flows, records_per_context = _decode_groups(batch, context, state, skips)
    messages = _messages_table(batch, context, message_rows, records_per_context[message_rows])
    return Decoded(flows=flows, messages=messages, skips=skips)


def _known_simple(
    simple: SimpleDatagrams, exporters: np.ndarray, store: TemplateStore
) -> tuple[SimpleDatagrams, list[Template], np.ndarray]:
    """The simple datagrams whose template is known before the batch: (those, the distinct templates,
    each datagram's index into them). One template lookup per distinct key, not per datagram."""
    sources = exporters[simple.positions]
    domain_index, _ = _factorize_domains(sources, simple.version, simple.domain)
    _, firsts, inverse = np.unique((domain_index << 16) | simple.set_id, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    found = [
        store.get((sources[r].tobytes(), int(simple.version[r]), int(simple.domain[r]), int(simple.set_id[r])))
        for r in firsts.tolist()
    ]
    known = np.array([t is not None for t in found], bool)
    keep = known[inverse]
    renumber = np.cumsum(known) - 1
    templates = [t for t in found if t is not None]
    return simple.take(np.flatnonzero(keep)), templates, renumber[inverse[keep]]


def _file_simple(
    batch: _Batch,
    simple: SimpleDatagrams,
    templates: list[Template],
    which: np.ndarray,
    datagrams: Datagrams,
    store: TemplateStore,
    serial: int,
) -> np.ndarray:
    """Add the simple datagrams as context rows after all others and file their data sets; returns their rows.

    Their templates were looked up before the batch (``templates[which[i]]``); one redefined or withdrawn
    by an earlier datagram of the same batch is replaced by the one current at that datagram's position.
    """
    first = len(batch.contexts)
    batch.simple = simple
    batch.simple_exporters = datagrams.exporters[simple.positions]
    batch.simple_received = datagrams.received_ns[simple.positions]
    rows = np.arange(first, first + len(simple.positions), dtype=np.int64)
    payloads = datagrams.payloads
    starts = simple.body_start.tolist()
    bodies = [payloads[p][start:] for p, start in zip(simple.positions.tolist(), starts, strict=True)]
    which = which.copy()
    for i in _under_changed_domains(batch, simple):
        exporter = batch.simple_exporters[i].tobytes()
        version, domain, set_id = int(simple.version[i]), int(simple.domain[i]), int(simple.set_id[i])
        history = batch.changes[(exporter, version, domain)]
        template = _template_at(history, int(simple.positions[i]), templates[which[i]], set_id)
        if template is None:
            which[i] = -1
            context = (
                exporter,
                int(batch.simple_received[i]),
                version,
                domain,
                int(simple.sequence[i]),
                int(simple.export_secs[i]),
                int(simple.uptime_ms[i]),
            )
            store.hold((exporter, version, domain, set_id), HeldSet((serial, first + i, context), bodies[i]))
        elif template is not templates[which[i]]:
            which[i] = len(templates)
            templates.append(template)
    for index, template in enumerate(templates):
        members = np.flatnonzero(which == index)
        if len(members):
            group = batch.groups.get(id(template))
            if group is None:
                group = batch.groups[id(template)] = (template, [], [])
            group[1].extend(rows[members].tolist())
            group[2].extend(bodies[i] for i in members.tolist())
    return rows


def _under_changed_domains(batch: _Batch, simple: SimpleDatagrams) -> list[int]:
    """Simple datagrams of domains whose templates changed during this batch (usually none)."""
    if not batch.changes:
        return []
    return [
        i
        for i in range(len(simple.positions))
        if (batch.simple_exporters[i].tobytes(), int(simple.version[i]), int(simple.domain[i])) in batch.changes
    ]


def _template_at(
    history: list[tuple[int, dict[int, Template]]], position: int, template: Template, set_id: int
) -> Template | None:
    """The template of ``set_id`` as it was at ``position``, given the domain's changes in this batch."""
    current: Template | None = template
    for changed_at, snapshot in history:
        if changed_at > position:
            break
        current = snapshot.get(set_id)
    return current


def _version_of(payload: bytes) -> int:
    return int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 0


def _parse_message(
    payload: bytes, exporter: bytes, received: int, batch: _Batch, store: TemplateStore, serial: int
) -> None:
    """File the sets of one message; raises _Malformed (after keeping what parsed) on bad structure."""
    size = len(payload)
    version = _version_of(payload)
    if version == V9:
        if size < _V9_HEADER.size:
            raise _Malformed("truncated NetFlow v9 header")
        _, _, uptime, secs, sequence, domain = _V9_HEADER.unpack_from(payload)
        start, end = _V9_HEADER.size, size
    elif version == IPFIX:
        if size < _IPFIX_HEADER.size:
            raise _Malformed("truncated IPFIX header")
        _, length, secs, sequence, domain = _IPFIX_HEADER.unpack_from(payload)
        uptime = 0
        if length < _IPFIX_HEADER.size or length > size:
            batch.add_context((exporter, received, version, domain, sequence, secs, uptime))
            raise _Malformed("IPFIX length field disagrees with the datagram size")
        start, end = _IPFIX_HEADER.size, length
    else:
        raise _Malformed(f"not NetFlow v9/IPFIX (version {version})")
    context = (exporter, received, version, domain, sequence, secs, uptime)
    context_index = batch.add_context(context)
    domain_key = (exporter, version, domain)
    view = memoryview(payload)
    offset = start
    while end - offset >= _SET_HEADER.size:
        set_id, set_length = _SET_HEADER.unpack_from(payload, offset)
        if set_length < _SET_HEADER.size or offset + set_length > end:
            if version == V9 and set_id == 0 and set_length == 0 and not any(view[offset:end]):
                return  # trailing zero padding some v9 exporters add
            raise _Malformed("set length exceeds the message")
        body_start, body_end = offset + _SET_HEADER.size, offset + set_length
        offset = body_end
        if set_id >= 256:
            key = (*domain_key, set_id)
            template = store.get(key)
            if template is None:
                store.hold(key, HeldSet((serial, context_index, context), bytes(view[body_start:body_end])))
            else:
                batch.file(template, context_index, view[body_start:body_end])
        elif (version == V9 and set_id == 0) or (version == IPFIX and set_id == 2):
            _learn(store, batch, serial, domain_key, _templates(payload, body_start, body_end, version, set_id))
        elif (version == V9 and set_id == 1) or (version == IPFIX and set_id == 3):
            parse = _v9_options_templates if version == V9 else _ipfix_options_templates
            _learn(store, batch, serial, domain_key, parse(payload, body_start, body_end, set_id))
        else:
            raise _Malformed(f"reserved set id {set_id}")
    if version == IPFIX and offset != end:
        raise _Malformed("IPFIX message ends inside a set header")


def _learn(
    store: TemplateStore, batch: _Batch, serial: int, domain_key: DomainKey, parsed: list[tuple[int, Template | None]]
) -> None:
    """Apply parsed template records: add/redefine, withdraw (None), and release data held for them."""
    changed = False
    for template_id, template in parsed:
        if template is None:
            changed = True
            if template_id in (2, 3):
                store.withdraw_all(domain_key, options=template_id == 3)
            else:
                store.withdraw((*domain_key, template_id))
            continue
        key = (*domain_key, template_id)
        changed = changed or store.get(key) != template
        for held in store.add(key, template):
            held_serial, context_index, context = held.context
            if held_serial != serial:
                context_index = batch.add_context(context)
            batch.file(template, context_index, held.body)
    if changed:
        snapshot = {k[3]: t for k, t in store.templates.items() if k[:3] == domain_key}
        batch.changes.setdefault(domain_key, []).append((batch.position, snapshot))


def _check_template(template_id: int, fields: tuple[Field, ...], scope_count: int = 0) -> Template:
    if template_id < 256:
        raise _Malformed("template id below 256")
    template = Template(template_id, fields, scope_count)
    if template.min_record_length == 0:
        raise _Malformed("template with zero-length records")
    return template


def _templates(payload: bytes, start: int, end: int, version: int, set_id: int) -> list[tuple[int, Template | None]]:
    """Template records of a v9 (set 0) or IPFIX (set 2) template set; field count 0 = withdrawal (IPFIX)."""
    out: list[tuple[int, Template | None]] = []
    offset = start
    while end - offset >= 4:
        template_id, count = _PAIR.unpack_from(payload, offset)
        offset += 4
        if count == 0:
            if version == V9:
                break  # padding
            out.append((template_id, None))
            continue
        fields, offset = _fields(payload, offset, end, count, version)
        out.append((template_id, _check_template(template_id, fields)))
    return out


def _fields(payload: bytes, offset: int, end: int, count: int, version: int) -> tuple[tuple[Field, ...], int]:
    fields = []
    for _ in range(count):
        if offset + 4 > end:
            raise _Malformed("template runs past its set")
        element, length = _PAIR.unpack_from(payload, offset)
        offset += 4
        enterprise = 0
        if version == IPFIX and element & 0x8000:
            if offset + 4 > end:
                raise _Malformed("template runs past its set")
            element &= 0x7FFF
            enterprise = int.from_bytes(payload[offset : offset + 4], "big")
            offset += 4
        if version == V9 and length == VARIABLE_LENGTH:
            raise _Malformed("variable-length field in a NetFlow v9 template")
        fields.append(Field(element, length, enterprise))
    return tuple(fields), offset


def _v9_options_templates(payload: bytes, start: int, end: int, set_id: int) -> list[tuple[int, Template | None]]:
    out: list[tuple[int, Template | None]] = []
    offset = start
    while end - offset >= _V9_OPTIONS_HEADER.size + 4:
        template_id, scope_length, option_length = _V9_OPTIONS_HEADER.unpack_from(payload, offset)
        offset += _V9_OPTIONS_HEADER.size
        if scope_length % 4 or option_length % 4 or scope_length == 0:
            raise _Malformed("NetFlow v9 options template with impossible lengths")
        if offset + scope_length + option_length > end:
            raise _Malformed("template runs past its set")
        scopes, offset = _fields(payload, offset, end, scope_length // 4, V9)
        scopes = tuple(Field(f.element, f.length, V9_SCOPE) for f in scopes)
        options, offset = _fields(payload, offset, end, option_length // 4, V9)
        out.append((template_id, _check_template(template_id, scopes + options, len(scopes))))
    return out


def _ipfix_options_templates(payload: bytes, start: int, end: int, set_id: int) -> list[tuple[int, Template | None]]:
    out: list[tuple[int, Template | None]] = []
    offset = start
    while end - offset >= 4:
        template_id, count = _PAIR.unpack_from(payload, offset)
        if count == 0:
            out.append((template_id, None))
            offset += 4
            continue
        if end - offset < _IPFIX_OPTIONS_HEADER.size:
            break
        _, _, scope_count = _IPFIX_OPTIONS_HEADER.unpack_from(payload, offset)
        offset += _IPFIX_OPTIONS_HEADER.size
        if scope_count == 0 or scope_count > count:
            raise _Malformed("IPFIX options template with impossible scope count")
        fields, offset = _fields(payload, offset, end, count, IPFIX)
        out.append((template_id, _check_template(template_id, fields, scope_count)))
    return out


# column decoding ----------------------------------------------------------------------------------


@dataclass
class _Context:
    """Per-context-row arrays (one row per message or released held set)."""

    exporter: np.ndarray
    received_ns: np.ndarray
    version: np.ndarray
    domain: np.ndarray
    sequence: np.ndarray
    export_secs: np.ndarray
    uptime_ms: np.ndarray
    domain_index: np.ndarray
    domains: list[DomainKey]

    @classmethod
    def of(cls, batch: _Batch) -> _Context:
        """Arrays of the parsed contexts followed by those of the simple datagrams."""
        exporter, received, version, domain, sequence, export_secs, uptime = (
            zip(*batch.contexts, strict=True) if batch.contexts else ((),) * 7
        )
        simple = batch.simple
        exporters = np.concatenate(
            [np.frombuffer(b"".join(exporter), np.uint8).reshape(-1, 16), batch.simple_exporters]
        )

        def column(values: tuple, extra: np.ndarray | None, dtype: type) -> np.ndarray:
            parsed = np.asarray(values, dtype)
            return parsed if extra is None else np.concatenate([parsed, extra.astype(dtype)])

        versions = column(version, simple and simple.version, np.uint16)
        domains = column(domain, simple and simple.domain, np.uint32)
        domain_index, first_rows = _factorize_domains(exporters, versions, domains)
        return cls(
            exporter=exporters,
            received_ns=column(received, batch.simple_received if simple else None, np.int64),
            version=versions,
            domain=domains,
            sequence=column(sequence, simple and simple.sequence, np.uint32),
            export_secs=column(export_secs, simple and simple.export_secs, np.int64),
            uptime_ms=column(uptime, simple and simple.uptime_ms, np.int64),
            domain_index=domain_index,
            domains=[(exporters[r].tobytes(), int(versions[r]), int(domains[r])) for r in first_rows.tolist()],
        )


def _factorize_domains(
    exporters: np.ndarray, versions: np.ndarray, domains: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Index of each row's (exporter, version, domain) among the distinct ones, and each one's first row.

    Integer keys throughout: factorizing 16-byte rows directly (``np.unique(axis=0)``) is far slower.
    """
    halves = np.ascontiguousarray(exporters).view(np.uint64).reshape(-1, 2)
    _, high = np.unique(halves[:, 0], return_inverse=True)
    _, low = np.unique(halves[:, 1], return_inverse=True)
    exporter_code = high.reshape(-1).astype(np.int64) * (int(low.max(initial=0)) + 1) + low.reshape(-1)
    key = ((exporter_code * 2 + (versions == 10)) << 32) | domains.astype(np.int64)
    _, first_rows, index = np.unique(key, return_index=True, return_inverse=True)
    return index.reshape(-1).astype(np.int64), first_rows


def _decode_groups(batch: _Batch, context: _Context, state: NetflowState, skips: Skips) -> tuple[pa.Table, np.ndarray]:
    records_per_context = np.zeros(batch.rows, np.int64)
    groups = sorted(batch.groups.values(), key=lambda group: not group[0].is_options)
    tables = []
    for template, indices, bodies in groups:
        records = Records(template, bodies)
        skips.add("data records overrunning their set (variable-length)", records.overruns)
        row_context = np.repeat(np.asarray(indices, np.int64), records.per_set)
        np.add.at(records_per_context, np.asarray(indices, np.int64), records.per_set)
        if not len(records):
            continue
        if template.is_options:
            _learn_options(records, row_context, context, state)
        else:
            tables.append(_flows(records, row_context, context, state, skips))
    flows = pa.concat_tables(tables) if tables else empty_flows()
    return flows, records_per_context


def _learn_options(records: Records, row_context: np.ndarray, context: _Context, state: NetflowState) -> None:
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
    if rate is None and records.has(ie.PACKET_INTERVAL) and records.has(ie.PACKET_SPACE):
        rate = packet_interval_rate(records.unsigned(ie.PACKET_INTERVAL), records.unsigned(ie.PACKET_SPACE))
    if rate is None and records.has(ie.SAMPLING_SIZE) and records.has(ie.SAMPLING_POPULATION):
        size = records.unsigned(ie.SAMPLING_SIZE)
        population = records.unsigned(ie.SAMPLING_POPULATION)
        rate = np.where(size > 0, population // np.maximum(size, 1), 0).astype(np.uint64)
    return rate


_NUMPY_TYPES = {pa.uint8(): np.uint8, pa.uint16(): np.uint16, pa.uint32(): np.uint32, pa.uint64(): np.uint64}


def _flows(records: Records, row_context: np.ndarray, context: _Context, state: NetflowState, skips: Skips) -> pa.Table:
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
    for column, values in section_columns(records, skips).items():
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
        use_other = ~found[0][1].any(axis=1) & found[1][1].any(axis=1)
        matrix = np.where(use_other[:, None], matrices[1], matrix)
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
    out = {"icmp_type": pa.array(icmp_type.astype(np.uint8))}
    if icmp_code is not None:
        out["icmp_code"] = pa.array(icmp_code.astype(np.uint8))
    return out


def _times(
    records: Records, row_context: np.ndarray, context: _Context, version: int, system_init: dict[DomainKey, int]
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


def _messages_table(batch: _Batch, context: _Context, rows: np.ndarray, records: np.ndarray) -> pa.Table:
    status = np.full(batch.rows, "ok", object)
    for row, reason in batch.status.items():
        status[row] = reason
    return pa.table(
        {
            "exporter": addresses.from_ipv6_bytes(context.exporter[rows]),
            "version": pa.array(context.version[rows]),
            "domain": pa.array(context.domain[rows]),
            "sequence": pa.array(context.sequence[rows].astype(np.uint64)),
            "records": pa.array(records.astype(np.uint32)),
            "received_ns": pa.array(context.received_ns[rows]),
            "status": pa.array(status[rows], pa.string()),
        },
        schema=MESSAGE_SCHEMA,
    )
