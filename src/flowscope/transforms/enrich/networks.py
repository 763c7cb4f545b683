"""A networks file: CIDR prefix -> name, role, site, region, tenant, boundary; the most specific prefix wins.

TOML (``[networks."10.0.0.0/8"] name = "corp"``, or a ``[[network]]`` list with a ``cidr`` key) or CSV
(header ``cidr,name,role,site,region,tenant,boundary``; every column but ``cidr`` optional). IPv4 prefixes
are stored as their IPv4-mapped range, so ``::ffff:10.0.0.0/104`` and ``10.0.0.0/8`` are the same network;
IPv6 prefixes wider than that block (``::/0``, ``::/64``) hold IPv6 addresses only: ``0.0.0.0/0`` is "every
IPv4 address", ``::/0`` "every IPv6 address", as a reader of the file means them.
Nested prefixes become one range table (``ranges.RangeTable``) by a sweep over the prefixes in address
order, so a lookup is one binary search whatever the nesting depth.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from flowscope.addresses import cidr_bounds
from flowscope.errors import FlowscopeError
from flowscope.transforms.enrich.ranges import V4_BLOCK_START, V4_BLOCK_STOP, RangeTable, overlay
from flowscope.transforms.enrich.rows import optional_text, read_rows

ATTRIBUTES = ("name", "role", "site", "region", "tenant", "boundary")
"""What a network carries (each becomes ``src_net_*`` / ``dst_net_*``)."""
_SPACE_END = 1 << 128
_V4_BLOCK = (V4_BLOCK_START, V4_BLOCK_STOP)
_V4_START, _V4_STOP = (int.from_bytes(bound) for bound in _V4_BLOCK)


@dataclass(frozen=True)
class Networks:
    ranges: RangeTable
    """Value: the row of the network in ``attributes``."""
    attributes: pa.Table
    """One row per network, one string column per ``ATTRIBUTES`` entry some network has (only those become
    columns of the flows)."""

    @classmethod
    def load(cls, path: str | Path) -> Networks:
        return cls.from_rows(read_rows(Path(path), "networks", _toml_rows), str(path))

    @classmethod
    def from_rows(cls, rows: list[dict[str, Any]], origin: str = "networks") -> Networks:
        """Networks from rows with a ``cidr`` and any of ``ATTRIBUTES`` (a prefix given twice is an error)."""
        bounds: dict[tuple[int, int], int] = {}
        for number, row in enumerate(rows):
            cidr = optional_text(row.get("cidr"))
            if cidr is None:
                raise FlowscopeError(f"{origin}: network {number + 1} has no cidr")
            try:
                first, last = cidr_bounds(cidr)
            except FlowscopeError as exc:
                raise FlowscopeError(f"{origin}: {exc}") from None
            span = (int.from_bytes(first), int.from_bytes(last))
            if span in bounds:
                raise FlowscopeError(f"{origin}: {cidr} is given twice")
            bounds[span] = number
        columns = {name: pa.array([optional_text(row.get(name)) for row in rows], pa.string()) for name in ATTRIBUTES}
        attributes = pa.table({name: array for name, array in columns.items() if array.null_count < len(array)})
        v4 = {span: row for span, row in bounds.items() if _V4_START <= span[0] < _V4_STOP}
        others = {span: row for span, row in bounds.items() if span not in v4}
        starts, values = overlay(*_steps(others, 0, _SPACE_END), *_steps(v4, _V4_START, _V4_STOP), *_V4_BLOCK)
        return cls(RangeTable.from_steps(starts, values), attributes)

    def lookup(self, matrix: np.ndarray) -> np.ndarray:
        """The row of the most specific network holding each address (int32, -1: none)."""
        return self.ranges.lookup(matrix)


def _steps(bounds: dict[tuple[int, int], int], begin: int, end: int) -> tuple[np.ndarray, np.ndarray]:
    """``S16`` steps (start, network row) of the most specific prefix at every address of [begin, end), from
    nested (first, last) spans: prefixes never partly overlap, so a stack of the prefixes open at the cursor
    is the nesting."""
    starts, values = [begin], [-1]
    open_spans: list[tuple[int, int]] = []  # (last address, row), outermost first

    def close_until(address: int) -> None:
        while open_spans and open_spans[-1][0] < address:
            last, _ = open_spans.pop()
            if last + 1 < end:
                starts.append(last + 1)
                values.append(open_spans[-1][1] if open_spans else -1)

    for (first, last), row in sorted(bounds.items(), key=lambda item: (item[0][0], -item[0][1])):
        close_until(first)
        open_spans.append((last, row))
        starts.append(first)
        values.append(row)
    close_until(end)
    keys = np.frombuffer(b"".join(key.to_bytes(16) for key in starts), np.uint8).reshape(-1, 16)
    return keys.view("S16").ravel(), np.array(values, np.int32)


def _toml_rows(document: dict[str, Any]) -> list[dict[str, Any]]:
    rows = [{"cidr": cidr, **fields} for cidr, fields in document.get("networks", {}).items()]
    return rows + list(document.get("network", []))
