"""Declaring a keyed reduction: the key, and how every other field combines.

Strategies: ``sum``, ``min``, ``max``, ``first`` and ``last`` (in record order: by start
time, then arrival order), ``merge`` (bitwise OR for integer flag fields such as
``tcp_flags``; the last non-null value for other types). Fields not named use the
reduction's ``default``. The pseudo-field ``duration`` is ``time_flow_end -
time_flow_start``; when it is reduced the result's end time is its start plus the
reduced duration.

A reduction file (``--reduce my.toml``)::

    key = ["src_addr", "dst_addr", "proto"]
    default = "last"
    [fields]
    bytes = "sum"
    packets = "sum"
    time_flow_start = "min"
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from flowscope.errors import FlowscopeError
from flowscope.schema import FLOWS, Role, columns_with_role

STRATEGIES = ("sum", "min", "max", "first", "last", "merge")
DURATION = "duration"

COUNTERS = columns_with_role(FLOWS, Role.COUNTER)
"""The summable flow columns: bytes and packets of both directions."""


@dataclass(frozen=True)
class Reduction:
    name: str
    description: str
    key: tuple[str, ...]
    fields: Mapping[str, str] = field(default_factory=dict)
    default: str = "last"

    def __post_init__(self) -> None:
        if not self.key:
            raise FlowscopeError(f"reduction {self.name!r}: the key names no field")
        for name, strategy in {**self.fields, "(default)": self.default}.items():
            if strategy not in STRATEGIES:
                raise FlowscopeError(
                    f"reduction {self.name!r}: {name}: unknown strategy {strategy!r} (use {', '.join(STRATEGIES)})"
                )
        clash = set(self.key) & set(self.fields)
        if clash:
            raise FlowscopeError(f"reduction {self.name!r}: key fields cannot have a strategy: {sorted(clash)}")

    def strategy(self, column: str) -> str:
        return self.fields.get(column, self.default)

    def check(self, names: Collection[str]) -> None:
        """Errors naming the user's fields when the data lacks the key or has no such field."""
        missing = [k for k in self.key if k not in names]
        if missing:
            raise FlowscopeError(f"reduction {self.name!r}: key field(s) {missing} not in the data")
        unknown = [f for f in self.fields if f not in names and f != DURATION]
        if unknown:
            raise FlowscopeError(f"reduction {self.name!r}: unknown field(s) {unknown}")

    def reduces_duration(self, names: Collection[str]) -> bool:
        """Whether the end time is start + the reduced ``duration`` (the data has both times)."""
        return DURATION in self.fields and "time_flow_start" in names and "time_flow_end" in names


BUILTIN: dict[str, Reduction] = {
    r.name: r
    for r in (
        Reduction(
            name="pairs",
            description="one record per (src_addr, src_port, dst_addr, dst_port): duration, packets and bytes "
            "of both directions summed, last record wins for the rest",
            key=("src_addr", "src_port", "dst_addr", "dst_port"),
            fields={DURATION: "sum", **dict.fromkeys(COUNTERS, "sum")},
        ),
        Reduction(
            name="conversations",
            description="one record per 5-tuple: first start, last end, counters summed, TCP flags merged",
            key=("src_addr", "dst_addr", "src_port", "dst_port", "proto"),
            fields={
                "time_flow_start": "min",
                "time_flow_end": "max",
                "tcp_flags": "merge",
                **dict.fromkeys(COUNTERS, "sum"),
            },
        ),
    )
}


def load(name_or_path: str) -> Reduction:
    """A built-in reduction by name, or one declared in a ``.toml`` / ``.json`` file."""
    if name_or_path in BUILTIN:
        return BUILTIN[name_or_path]
    path = Path(name_or_path)
    if path.suffix.lower() not in (".toml", ".json") or not path.is_file():
        raise FlowscopeError(
            f"unknown reduction {name_or_path!r}: use one of {', '.join(BUILTIN)} or a .toml/.json file"
        )
    try:
        text = path.read_text()
        spec = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
    except (OSError, ValueError) as exc:
        raise FlowscopeError(f"{path}: cannot read reduction: {exc}") from exc
    if not isinstance(spec, dict) or not isinstance(spec.get("key"), list):
        raise FlowscopeError(f"{path}: a reduction needs key = [field, ...]")
    fields = spec.get("fields", {})
    if not isinstance(fields, dict):
        raise FlowscopeError(f"{path}: fields must map field names to strategies")
    return Reduction(
        name=path.stem,
        description=str(spec.get("description", f"reduction from {path.name}")),
        key=tuple(str(k) for k in spec["key"]),
        fields={str(k): str(v) for k, v in fields.items()},
        default=str(spec.get("default", "last")),
    )
