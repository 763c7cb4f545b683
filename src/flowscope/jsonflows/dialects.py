"""Which JSON keys carry which flow column, and in which form, for each JSON lines family.

Both families are derived from the column catalogue, so a new column needs no change here:
- ``flowscope``: what ``flowscope read -o x.jsonl`` and ``query --format json`` write: the flow columns under
  their own names, addresses and MACs as text, times as ISO 8601 text.
- ``goflow2``: what GoFlow2 v2 writes with ``-format=json``: the protobuf field names (``time_received_ns``,
  ``sampler_address``, ...), times as integer nanoseconds, addresses and MACs as text, ``etype`` and ``proto``
  as names (``IPv4``, ``TCP``; GoFlow2 renders numbers it has no name for as ``""``, which reads as unknown)
  and ``type`` as the FlowType name (``IPFIX``, ``NETFLOW_V5``, ``NETFLOW_V9``, ``SFLOW_5``).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass

import pyarrow as pa

from flowscope.schema import FLOWS, Role, table_columns


class Kind(enum.Enum):
    NUMBER = "number"
    TEXT = "text"
    ADDRESS = "address"
    MAC = "mac"
    ISO_TIME = "iso time"
    NS_TIME = "nanoseconds"
    PROTO = "protocol"
    ETYPE = "ethertype"
    FLOW_TYPE = "flow type"


@dataclass(frozen=True)
class JsonDialect:
    name: str
    description: str
    keys: Mapping[str, tuple[str, Kind]]
    """JSON key -> (flow column, the form its values take)."""
    required: frozenset[str]
    """Keys a line must have for the family to be recognised (a flow is nothing without its addresses)."""

    def score(self, keys: set[str]) -> int:
        """How many of a line's keys this family knows (0 when it lacks a required one)."""
        return len(keys & self.keys.keys()) if self.required <= keys else 0


def _flowscope_kind(role: Role, is_text: bool) -> Kind:
    if role is Role.ADDRESS:
        return Kind.ADDRESS
    if role is Role.MAC:
        return Kind.MAC
    if role is Role.TIME:
        return Kind.ISO_TIME
    return Kind.TEXT if is_text else Kind.NUMBER


_GOFLOW2_KINDS = {"type": Kind.FLOW_TYPE, "proto": Kind.PROTO, "etype": Kind.ETYPE}


def _goflow2_kind(name: str, role: Role) -> Kind:
    if role is Role.TIME:
        return Kind.NS_TIME
    if role in (Role.ADDRESS, Role.MAC):
        return _flowscope_kind(role, False)
    return _GOFLOW2_KINDS.get(name, Kind.NUMBER)


FLOWSCOPE = JsonDialect(
    name="flowscope",
    description="flowscope's own JSON lines (read -o x.jsonl, query --format json): flow column names, ISO times",
    keys={c.name: (c.name, _flowscope_kind(c.role, pa.types.is_string(c.arrow_type))) for c in table_columns(FLOWS)},
    required=frozenset({"src_addr", "dst_addr"}),
)
GOFLOW2 = JsonDialect(
    name="goflow2",
    description="GoFlow2 -format=json lines: protobuf field names, times in ns, etype/proto/type by name",
    keys={c.goflow2.name: (c.name, _goflow2_kind(c.name, c.role)) for c in table_columns(FLOWS) if c.goflow2},
    required=frozenset({"src_addr", "dst_addr", "time_received_ns"}),
)
DIALECTS = (GOFLOW2, FLOWSCOPE)

_KEY = re.compile(rb'"([A-Za-z0-9_]+)"\s*:')


def line_keys(line: bytes) -> set[str]:
    """The keys of a JSON object line, found without parsing it (the line may be cut short)."""
    return {key.decode() for key in _KEY.findall(line)}


def find(keys: set[str]) -> JsonDialect | None:
    """The family that knows most of ``keys``; None when none has its required keys."""
    best = max(DIALECTS, key=lambda dialect: dialect.score(keys))
    return best if best.score(keys) else None
