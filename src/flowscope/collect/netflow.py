"""NetFlow v9 (RFC 3954) and IPFIX (RFC 7011) decoding, one template-driven decoder for both.

A batch is decoded in two steps. First its data sets are filed under their templates: the
common datagram (header + one data set of a known template) for the whole batch at once
(``flowscope.collect.simple``), the others by one Python pass over their sets that checks
headers, learns or withdraws templates and holds data whose template has not come yet. Then,
per template, all its records in the batch are decoded column by column with numpy
(``flowscope.collect.columns``), options data first so the sampling rates it announces apply
to the flows of the same batch.
"""

from __future__ import annotations

import struct

import numpy as np
import pyarrow as pa

from flowscope import addresses
from flowscope.collect.columns import flow_table, learn_options
from flowscope.collect.contexts import Contexts, factorize_domains
from flowscope.collect.datagrams import MESSAGE_SCHEMA, Datagrams, Decoded
from flowscope.collect.fields import IPFIX, V9
from flowscope.collect.records import Records
from flowscope.collect.simple import SimpleDatagrams, find_simple
from flowscope.collect.state import NetflowState
from flowscope.collect.template_sets import (
    Malformed,
    ipfix_options_templates,
    templates,
    v9_options_templates,
)
from flowscope.collect.templates import DomainKey, HeldSet, Template, TemplateStore
from flowscope.diagnostics import Skips
from flowscope.schema import empty_flows

_V9_HEADER = struct.Struct(">HHIIII")  # version, count, sysUptime ms, unix secs, sequence, source id
_IPFIX_HEADER = struct.Struct(">HHIII")  # version, length, export time, sequence, observation domain
_SET_HEADER = struct.Struct(">HH")


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


def decode_templated(datagrams: Datagrams, state: NetflowState) -> Decoded:
    """Decode NetFlow v9 and IPFIX datagrams (any mix) into flows, message rows and skip counts."""
    skips = Skips(unit="items")
    batch = _Batch()
    store = state.templates
    serial = state.batches = state.batches + 1
    dropped_before, refused_before = store.dropped_sets, store.refused_templates
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
        except Malformed as exc:
            reason = str(exc)
            if len(batch.contexts) == row:  # header unreadable: still one message row
                batch.add_context((exporter, received, _version_of(payload), 0, 0, 0, 0))
            batch.status[row] = reason
            skips.add(reason, example=f"exporter {addresses.format_one(exporter)}")
    message_rows[simple.positions] = _file_simple(batch, simple, simple_templates, which, datagrams, store, serial)
    skips.add("data sets dropped: template never arrived (hold buffer full)", store.dropped_sets - dropped_before)
    skips.add(f"templates refused: {store.max_templates:,} known already", store.refused_templates - refused_before)
    context = Contexts.of(batch.contexts, batch.simple, batch.simple_exporters, batch.simple_received)
    flows, records_per_context, flows_per_context = _decode_groups(batch, context, state, skips)
    messages = _messages_table(
        batch, context, message_rows, records_per_context[message_rows], flows_per_context[message_rows]
    )
    return Decoded(flows=flows, messages=messages, skips=skips)


def _known_simple(
    simple: SimpleDatagrams, exporters: np.ndarray, store: TemplateStore
) -> tuple[SimpleDatagrams, list[Template], np.ndarray]:
    """The simple datagrams whose template is known before the batch: (those, the distinct templates,
    each datagram's index into them). One template lookup per distinct key, not per datagram."""
    sources = exporters[simple.positions]
    domain_index, _ = factorize_domains(sources, simple.version, simple.domain)
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
    """File the sets of one message; raises Malformed (after keeping what parsed) on bad structure."""
    size = len(payload)
    version = _version_of(payload)
    if version == V9:
        if size < _V9_HEADER.size:
            raise Malformed("truncated NetFlow v9 header")
        _, _, uptime, secs, sequence, domain = _V9_HEADER.unpack_from(payload)
        start, end = _V9_HEADER.size, size
    elif version == IPFIX:
        if size < _IPFIX_HEADER.size:
            raise Malformed("truncated IPFIX header")
        _, length, secs, sequence, domain = _IPFIX_HEADER.unpack_from(payload)
        uptime = 0
        if length < _IPFIX_HEADER.size or length > size:
            batch.add_context((exporter, received, version, domain, sequence, secs, uptime))
            raise Malformed("IPFIX length field disagrees with the datagram size")
        start, end = _IPFIX_HEADER.size, length
    else:
        raise Malformed(f"not NetFlow v9/IPFIX (version {version})")
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
            raise Malformed("set length exceeds the message")
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
            _learn(store, batch, serial, domain_key, templates(payload, body_start, body_end, version, set_id))
        elif (version == V9 and set_id == 1) or (version == IPFIX and set_id == 3):
            parse = v9_options_templates if version == V9 else ipfix_options_templates
            _learn(store, batch, serial, domain_key, parse(payload, body_start, body_end, set_id))
        else:
            raise Malformed(f"reserved set id {set_id}")
    if version == IPFIX and offset != end:
        raise Malformed("IPFIX message ends inside a set header")


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


def _decode_groups(
    batch: _Batch, context: Contexts, state: NetflowState, skips: Skips
) -> tuple[pa.Table, np.ndarray, np.ndarray]:
    """Flows of every data template, and per context row its data records and, of those, its flows."""
    records_per_context = np.zeros(batch.rows, np.int64)
    flows_per_context = np.zeros(batch.rows, np.int64)
    groups = sorted(batch.groups.values(), key=lambda group: not group[0].is_options)
    tables = []
    for template, indices, bodies in groups:
        records = Records(template, bodies, state.tunnels)
        skips.add("data records overrunning their set (variable-length)", records.overruns)
        row_context = np.repeat(np.asarray(indices, np.int64), records.per_set)
        np.add.at(records_per_context, np.asarray(indices, np.int64), records.per_set)
        if not template.is_options:
            np.add.at(flows_per_context, np.asarray(indices, np.int64), records.per_set)
        if not len(records):
            continue
        if template.is_options:
            learn_options(records, row_context, context, state)
        else:
            tables.append(flow_table(records, row_context, context, state, skips))
    flows = pa.concat_tables(tables) if tables else empty_flows()
    return flows, records_per_context, flows_per_context


def _messages_table(
    batch: _Batch, context: Contexts, rows: np.ndarray, records: np.ndarray, flows: np.ndarray
) -> pa.Table:
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
            "flows": pa.array(flows.astype(np.uint32)),
            "received_ns": pa.array(context.received_ns[rows]),
            "status": pa.array(status[rows], pa.string()),
        },
        schema=MESSAGE_SCHEMA,
    )
