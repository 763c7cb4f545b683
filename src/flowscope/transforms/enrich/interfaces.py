"""An interfaces file: (exporter address, ifIndex) -> name, description, speed, boundary.

CSV with the header ``exporter,ifindex,name,description,speed,boundary`` (all but the first two optional),
or TOML ``[[interface]]`` tables with the same keys. Lookups are vectorised: the exporter of each row is
found among the few distinct exporter addresses of a batch, then (exporter, ifIndex) as one 64-bit key is
searched in the sorted keys of the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flowscope.addresses import parse_one
from flowscope.arrays import contiguous
from flowscope.errors import FlowscopeError
from flowscope.transforms.enrich.rows import optional_text, read_rows

ATTRIBUTES = {"name": pa.string(), "description": pa.string(), "speed": pa.uint64(), "boundary": pa.string()}
"""What an interface carries (each becomes ``in_if_*`` / ``out_if_*``); speed in bit/s."""
BOUNDARIES = ("external", "internal")


@dataclass(frozen=True)
class Interfaces:
    exporters: dict[bytes, int]
    """Exporter address (16 stored bytes) -> exporter number."""
    keys: np.ndarray
    """Sorted uint64 keys: exporter number << 32 | ifIndex."""
    attributes: pa.Table
    """One row per key, in key order; the ``ATTRIBUTES`` some interface has."""

    @classmethod
    def load(cls, path: str | Path) -> Interfaces:
        rows = read_rows(Path(path), "interfaces", lambda document: list(document.get("interface", [])))
        return cls.from_rows(rows, str(path))

    @classmethod
    def from_rows(cls, rows: list[dict[str, Any]], origin: str = "interfaces") -> Interfaces:
        exporters: dict[bytes, int] = {}
        keyed: dict[int, dict[str, Any]] = {}
        for number, row in enumerate(rows, start=1):
            try:
                exporter = parse_one(str(row.get("exporter", "")))
                index = int(str(row.get("ifindex", "")).strip())
                speed = row.get("speed")
                speed = None if speed in (None, "") else int(str(speed).strip())
            except (FlowscopeError, ValueError) as exc:
                raise FlowscopeError(f"{origin}: interface {number}: {exc}") from None
            if not 0 <= index < 1 << 32:
                raise FlowscopeError(f"{origin}: interface {number}: ifindex {index} is not a 32-bit number")
            boundary = optional_text(row.get("boundary"))
            if boundary is not None and boundary.lower() not in BOUNDARIES:
                raise FlowscopeError(f"{origin}: interface {number}: boundary must be one of {', '.join(BOUNDARIES)}")
            key = exporters.setdefault(exporter, len(exporters)) << 32 | index
            if key in keyed:
                raise FlowscopeError(f"{origin}: interface {number} repeats exporter {row['exporter']} ifindex {index}")
            keyed[key] = {
                "name": optional_text(row.get("name")),
                "description": optional_text(row.get("description")),
                "speed": speed,
                "boundary": boundary and boundary.lower(),
            }
        order = sorted(keyed)
        values = {name: pa.array([keyed[key][name] for key in order], kind) for name, kind in ATTRIBUTES.items()}
        attributes = pa.table({name: array for name, array in values.items() if array.null_count < len(array)})
        return cls(exporters, np.array(order, np.uint64), attributes)

    def lookup(self, exporter: pa.Array | pa.ChunkedArray, if_index: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """The row in ``attributes`` of each flow's (exporter, ifIndex) (int32, -1: not in the file)."""
        encoded = pc.dictionary_encode(contiguous(exporter))
        known = np.array([self.exporters.get(value, -1) for value in encoded.dictionary.to_pylist()], np.int64)
        indices = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False)
        number = np.where(indices >= 0, known[indices] if len(known) else -1, -1)
        if_index = contiguous(if_index)
        index = pc.fill_null(if_index, 0).to_numpy(zero_copy_only=False).astype(np.uint64)
        keys = (number.astype(np.uint64) << np.uint64(32)) | index
        if not len(self.keys):
            return np.full(len(keys), -1, np.int32)
        found = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        hit = (number >= 0) & (self.keys[found] == keys)
        if if_index.null_count:
            hit &= pc.is_valid(if_index).to_numpy(zero_copy_only=False)
        return np.where(hit, found, -1).astype(np.int32)
