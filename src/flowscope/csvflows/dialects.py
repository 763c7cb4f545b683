"""How each flow-CSV family maps onto the flow schema, and which family a header belongs to.

Column names are compared after ``header.normalise`` (lower case, punctuation -> ``_``),
so ``Source.IP`` (Kaggle), `` Source IP`` (CICFlowMeter / CIC-IDS2017) and ``src_ip``
(the Python CICFlowMeter) are one column. A CSV holding any subset of a family's
columns is accepted as long as it has what identifies a flow (see ``required``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from flowscope.errors import FlowscopeError
from flowscope.schema import FLOW_SCHEMA

DURATION = "duration"
"""Pseudo-field: a duration column, turned into ``time_flow_end = time_flow_start + duration``."""


@dataclass(frozen=True)
class Dialect:
    name: str
    description: str
    columns: Mapping[str, tuple[str, ...]]
    """Flow field (or ``DURATION``) -> the normalised source column names that carry it."""
    required: tuple[frozenset[str], ...]
    """Each group needs at least one of its normalised names in the header."""
    time_formats: tuple[str, ...] = ()
    """strptime patterns for text timestamps, tried in order; empty means ISO 8601."""
    epoch_times: bool = False
    """Timestamps are Unix seconds instead of text."""
    duration_ns: int = 1_000
    """Nanoseconds per unit of the duration column."""
    keep_extra: bool = True
    """Keep unmapped columns (CIC features) after the core ones, named by their normalised name."""
    text_extras: frozenset[str] = frozenset()
    """Extra columns kept as text; every other extra is a numeric feature, read as float64."""

    def matches(self, names: set[str]) -> bool:
        return all(group & names for group in self.required)

    def mapping(self, names: list[str]) -> dict[str, str]:
        """Flow field -> the source column present in this header."""
        present = set(names)
        found = {}
        for field, candidates in self.columns.items():
            for candidate in candidates:
                if candidate in present:
                    found[field] = candidate
                    break
        return found


CIC = Dialect(
    name="cic",
    description="CICFlowMeter / CIC-IDS CSV and the Kaggle 87-column Unicauca set (or any subset of its columns)",
    columns={
        "src_addr": ("source_ip", "src_ip"),
        "dst_addr": ("destination_ip", "dst_ip"),
        "src_port": ("source_port", "src_port"),
        "dst_port": ("destination_port", "dst_port"),
        "proto": ("protocol",),
        "time_flow_start": ("timestamp",),
        DURATION: ("flow_duration",),
        "packets": ("total_fwd_packets", "tot_fwd_pkts"),
        "packets_rev": ("total_backward_packets", "total_bwd_packets", "tot_bwd_pkts"),
        "bytes": ("total_length_of_fwd_packets", "totlen_fwd_pkts"),
        "bytes_rev": ("total_length_of_bwd_packets", "totlen_bwd_pkts"),
    },
    required=(
        frozenset({"source_ip", "src_ip", "destination_ip", "dst_ip", "destination_port", "dst_port"}),
        frozenset({"flow_duration", "timestamp", "total_fwd_packets", "tot_fwd_pkts"}),
    ),
    # Day first; the Kaggle file has no separator before the hour (26/04/201711:11:17),
    # which the first pattern also reads because its space matches zero or more blanks.
    time_formats=(
        "%d/%m/%Y %H:%M:%S",
        "%d/%m/%Y %H:%M",
        "%d/%m/%Y %I:%M:%S %p",
        "%d/%m/%Y %I:%M %p",
        "%Y-%m-%d %H:%M:%S",
    ),
    duration_ns=1_000,
    text_extras=frozenset({"flow_id", "label", "protocolname", "protocol_name", "src_mac", "dst_mac"}),
)

NFDUMP = Dialect(
    name="nfdump",
    description="nfdump -o csv (nfdump 1.7 column set: ts,te,td,sa,da,sp,dp,pr,flg,...)",
    columns={
        "time_flow_start": ("ts",),
        "time_flow_end": ("te",),
        "src_addr": ("sa",),
        "dst_addr": ("da",),
        "src_port": ("sp",),
        "dst_port": ("dp",),
        "proto": ("pr",),
        "tcp_flags": ("flg",),
        "ip_tos": ("stos",),
        "packets": ("ipkt",),
        "bytes": ("ibyt",),
        "packets_rev": ("opkt",),
        "bytes_rev": ("obyt",),
        "in_if": ("in",),
        "out_if": ("out",),
        "src_as": ("sas",),
        "dst_as": ("das",),
        "next_hop": ("nh",),
        "vlan_id": ("svln",),
        "src_mac": ("ismc",),
        "dst_mac": ("odmc",),
        "sampler_address": ("ra",),
        "time_received": ("tr",),
    },
    required=(frozenset({"ts"}), frozenset({"sa"}), frozenset({"da"}), frozenset({"ipkt", "ibyt"})),
    keep_extra=False,
)

FTPROFILER = Dialect(
    name="ftprofiler",
    description="FlowTest ft-profiler input CSV (START_TIME,DURATION,PROTO,SRC_IP,DST_IP,...; '#' comments)",
    columns={
        "time_flow_start": ("start_time",),
        DURATION: ("duration",),
        "proto": ("proto",),
        "src_addr": ("src_ip",),
        "dst_addr": ("dst_ip",),
        "src_port": ("src_port",),
        "dst_port": ("dst_port",),
        "packets": ("packets",),
        "bytes": ("bytes",),
    },
    required=(frozenset({"start_time"}), frozenset({"src_ip"}), frozenset({"dst_ip"}), frozenset({"packets"})),
    epoch_times=True,
    duration_ns=1_000_000_000,
    keep_extra=False,
)

FLOWSCOPE = Dialect(
    name="flowscope",
    description="flowscope's own CSV (read -o x.csv, query --format csv): flow-schema column names, ISO times",
    columns={name: (name,) for name in FLOW_SCHEMA.names},
    required=(frozenset({"time_flow_start"}), frozenset({"src_addr"}), frozenset({"dst_addr"}), frozenset({"bytes"})),
    keep_extra=False,
)

# Most specific first: the ft-profiler header would also satisfy the loose CIC rule.
DIALECTS: tuple[Dialect, ...] = (FLOWSCOPE, NFDUMP, FTPROFILER, CIC)


def find(names: list[str]) -> Dialect | None:
    present = set(names)
    return next((d for d in DIALECTS if d.matches(present)), None)


def by_name(name: str) -> Dialect:
    for dialect in DIALECTS:
        if dialect.name == name:
            return dialect
    known = ", ".join(d.name for d in DIALECTS)
    raise FlowscopeError(f"unknown CSV dialect {name!r} (known: {known})")
