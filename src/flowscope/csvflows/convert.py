"""One parsed CSV chunk (typed by ``column_types``) -> a flow table, with unreadable rows found per reason."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flowscope.arrays import contiguous
from flowscope.csvflows import values
from flowscope.csvflows.dialects import DURATION, Dialect
from flowscope.schema import ADDRESS, FLOW_COLUMNS, FLOW_SCHEMA, FLOWS, TIMESTAMP, Role, columns_with_role


@dataclass
class Problem:
    reason: str
    rows: np.ndarray
    """Row indices (within the chunk) first found bad for this reason."""
    example: str


@dataclass
class Converted:
    table: pa.Table
    problems: list[Problem] = field(default_factory=list)


TEXT = pa.string()
REPEATING_TEXT = pa.binary()
"""Text that repeats (addresses, timestamps) is parsed as raw bytes: no UTF-8 check and no dictionary
building in the parser (together a third of its time). Addresses are read from the bytes as they are;
timestamps are dictionary-encoded (or taken one per run) and gathered by index."""

_ALONGSIDE = ThreadPoolExecutor(1, thread_name_prefix="csv-addresses")

MACS = columns_with_role(FLOWS, Role.MAC)
"""MAC columns are parsed from their text (``aa:bb:cc:dd:ee:ff``), never straight to integers."""


def column_types(
    dialect: Dialect, mapping: dict[str, str], names: list[str], *, numbers: bool
) -> dict[str, pa.DataType]:
    """The type pyarrow's CSV parser gives each source column.

    With ``numbers`` (the fast path), columns that hold plain numbers when the file is clean
    are parsed straight to their flow-schema integer type (float64 for durations, epoch
    times and numeric extras); a value that does not fit fails the chunk, which is then
    parsed with ``numbers=False`` (text) and converted row-tolerantly.
    """
    types = dict.fromkeys(names, TEXT)
    for name, source in mapping.items():
        kind = FLOW_SCHEMA.field(name).type if name in FLOW_COLUMNS else None
        if kind == ADDRESS or (kind == TIMESTAMP and not dialect.epoch_times):
            types[source] = REPEATING_TEXT
        elif not numbers:
            continue
        elif name == DURATION or (dialect.epoch_times and kind == TIMESTAMP):
            types[source] = pa.float64()
        elif name not in ("proto", "tcp_flags") and name not in MACS and pa.types.is_integer(kind):
            types[source] = kind
    if dialect.keep_extra and numbers:
        used = set(mapping.values())
        types.update((n, pa.float64()) for n in names if n not in used and n not in dialect.text_extras)
    return types


def _convert_field(name: str, text: pa.Array, dialect: Dialect, timezone: str) -> values.Converted:
    if name == DURATION:
        return values.to_float(text)
    if name == "proto":
        return values.to_protocol(text)
    if name == "tcp_flags":
        return values.to_tcp_flags(text)
    if name in MACS:
        return values.to_mac(text)
    kind = FLOW_SCHEMA.field(name).type
    if pa.types.is_string(kind):  # e.g. flowscope's own ``type`` and ``community_id``
        return text.cast(kind), None
    if kind == ADDRESS:
        return values.to_address(text)
    if kind == TIMESTAMP:
        if dialect.epoch_times:
            return values.to_epoch_timestamp(text)
        return values.to_timestamp(text, dialect.time_formats, timezone)
    return values.to_unsigned(text, kind)


def _end_time(start: pa.Array, duration: pa.Array, dialect: Dialect) -> values.Converted:
    """``time_flow_end`` from the start and a duration column (negative durations are unreadable)."""
    nanos = pc.cast(pc.round(pc.multiply(duration, float(dialect.duration_ns))), pa.int64(), safe=False)
    negative = pc.fill_null(pc.less(duration, 0), False).to_numpy(zero_copy_only=False)
    end = pc.add(pc.cast(start, pa.int64()), nanos).cast(TIMESTAMP)
    if negative.any():
        end = pc.if_else(pa.array(negative), pa.scalar(None, TIMESTAMP), end)
        return end, negative
    return end, None


def convert(raw: pa.Table, dialect: Dialect, mapping: dict[str, str], timezone: str) -> Converted:
    """Map ``raw`` (columns named by normalised header names, typed by ``column_types``) onto the flow
    schema."""
    columns: dict[str, pa.Array] = {}
    bad_by_reason: list[tuple[str, np.ndarray, pa.Array]] = []

    def take(name: str, source: str, converted: values.Converted) -> None:
        array, bad = converted
        columns[name] = array
        if bad is not None:
            bad_by_reason.append((f"unreadable {source} value", bad, contiguous(raw.column(source))))

    # Addresses cost most (IPv6 text ~0.4 us a value): all but the first are converted on another thread meanwhile
    # (hostile CSV -> pairs, 2 M rows of fresh IPv6 pairs: 3.62 -> 3.24 s wall; realistic IPv4 unchanged).
    addresses = [name for name in mapping if name in FLOW_COLUMNS and FLOW_SCHEMA.field(name).type == ADDRESS]
    later: dict[str, Future[values.Converted]] = {
        name: _ALONGSIDE.submit(values.to_address, contiguous(raw.column(mapping[name]))) for name in addresses[1:]
    }
    for name, source in mapping.items():
        if name in later:
            take(name, source, later[name].result())
        else:
            take(name, source, _convert_field(name, contiguous(raw.column(source)), dialect, timezone))
    if DURATION in columns:
        duration = columns.pop(DURATION)
        if "time_flow_start" in columns and "time_flow_end" not in columns:
            end, negative = _end_time(columns["time_flow_start"], duration, dialect)
            columns["time_flow_end"] = end
            if negative is not None:
                text = contiguous(raw.column(mapping[DURATION]))
                bad_by_reason.append((f"negative {mapping[DURATION]}", negative, text))
    if dialect.keep_extra:
        used = set(mapping.values())
        for source in raw.column_names:
            if source in used:
                continue
            # An extra named like a flow-schema field must not be taken for that field.
            name = f"csv_{source}" if source in FLOW_COLUMNS else source
            text = contiguous(raw.column(source))
            if source in dialect.text_extras:
                columns[name] = text
            else:
                take(name, source, values.to_float(text))
    return Converted(pa.table(columns), first_reasons(bad_by_reason, raw.num_rows))


def first_reasons(bad_by_reason: list[tuple[str, np.ndarray, pa.Array]], n: int) -> list[Problem]:
    """Each bad row is counted once, under the first reason found for it."""
    taken = np.zeros(n, dtype=bool)
    problems = []
    for reason, mask, text in bad_by_reason:
        rows = np.flatnonzero(mask & ~taken)
        if rows.size:
            taken[rows] = True
            problems.append(Problem(reason, rows, values.shown(text[int(rows[0])].as_py())))
    return problems
