"""``Enricher``: the batch transform that adds AS, country, network, interface and exporter columns.

Each address column is dictionary-encoded first (a hash pass), so every database is searched once per
*distinct* address of the batch and the answers are gathered back to the rows with one ``take`` per output
column. A long-running process (``collect``, ``watch``) reloads a database or file that changed on disk,
checking at most every ``reload_seconds``; a new version that fails to load is logged and the loaded one kept.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flowscope.addresses import to_matrix
from flowscope.arrays import contiguous
from flowscope.errors import FlowscopeError
from flowscope.transforms.enrich.config import EnrichConfig
from flowscope.transforms.enrich.interfaces import Interfaces
from flowscope.transforms.enrich.mmdb import MmdbTable
from flowscope.transforms.enrich.networks import Networks

log = logging.getLogger(__name__)

RELOAD_SECONDS = 10.0
_SIDES = (("src", "src_addr"), ("dst", "dst_addr"))
_INTERFACE_SIDES = (("in", "in_if"), ("out", "out_if"))


class _Watched:
    """A loaded file and the (mtime, size) it was loaded at."""

    def __init__(self, path: Path, load: Callable[[Path], Any]) -> None:
        self.path, self.load = path, load
        self.stamp = self._stamp()
        self.value = load(path)

    def _stamp(self) -> tuple[int, int] | None:
        try:
            stat = os.stat(self.path)
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def refresh(self) -> None:
        stamp = self._stamp()
        if stamp is None or stamp == self.stamp:
            return
        try:
            self.value = self.load(self.path)
        except FlowscopeError as exc:
            log.warning("keeping the loaded %s: %s", self.path, exc)
        else:
            log.info("reloaded %s", self.path)
        self.stamp = stamp


def _rows(records: np.ndarray) -> pa.Array:
    """Record numbers (-1: none) as ``take`` indices (null: none)."""
    return pa.array(records, pa.int32(), mask=records < 0)


def _database_with(field: str) -> Callable[[Path], MmdbTable]:
    """A loader of MMDB files that must hold ``field`` (also on a reload: a database replaced by one of
    another kind is refused, and the loaded one kept)."""

    def load(path: Path) -> MmdbTable:
        database = MmdbTable.load(path)
        if field not in database.fields:
            raise FlowscopeError(f"[geoip] {field}: {path} ({database.database_type}) holds no {field}")
        return database

    return load


class Enricher:
    """``pa.Table -> pa.Table``: the flows with the enrichment columns the configuration can fill.

    ``reload_seconds``: how often changed files are looked for (negative: never).
    """

    def __init__(self, config: EnrichConfig, *, reload_seconds: float = RELOAD_SECONDS) -> None:
        self.config = config
        self.reload_seconds = reload_seconds
        self.next_check = time.monotonic() + reload_seconds
        self.asn = _Watched(config.asn, _database_with("asn")) if config.asn else None
        self.country = _Watched(config.country, _database_with("country")) if config.country else None
        self.networks = _Watched(config.networks, Networks.load) if config.networks else None
        self.interfaces = _Watched(config.interfaces, Interfaces.load) if config.interfaces else None

    @classmethod
    def from_file(cls, path: str | Path) -> Enricher:
        return cls(EnrichConfig.load(path))

    def _watched(self) -> list[_Watched]:
        return [w for w in (self.asn, self.country, self.networks, self.interfaces) if w is not None]

    def __call__(self, table: pa.Table) -> pa.Table:
        if self.reload_seconds >= 0 and time.monotonic() >= self.next_check:
            for watched in self._watched():
                watched.refresh()
            self.next_check = time.monotonic() + self.reload_seconds
        columns: dict[str, pa.Array | pa.ChunkedArray] = {}
        for side, address in _SIDES:
            if self.asn is None and self.country is None and self.networks is None:
                break
            encoded = pc.dictionary_encode(contiguous(table.column(address)))
            distinct = to_matrix(encoded.dictionary)
            self._geoip(table, side, distinct, encoded.indices, columns)
            if self.networks is not None:
                networks: Networks = self.networks.value
                rows = _rows(networks.lookup(distinct)).take(encoded.indices)
                for name in networks.attributes.column_names:
                    columns[f"{side}_net_{name}"] = networks.attributes.column(name).take(rows)
        if self.interfaces is not None:
            interfaces: Interfaces = self.interfaces.value
            for side, index in _INTERFACE_SIDES:
                rows = _rows(interfaces.lookup(table.column("sampler_address"), table.column(index)))
                for name in interfaces.attributes.column_names:
                    columns[f"{side}_if_{name}"] = interfaces.attributes.column(name).take(rows)
        if self.config.exporters:
            columns.update(self._exporters(table.column("sampler_address")))
        for name, values in columns.items():
            if name in table.column_names:
                table = table.set_column(table.column_names.index(name), name, values)
            else:
                table = table.append_column(name, values)
        return table

    def _geoip(
        self, table: pa.Table, side: str, distinct: np.ndarray, indices: pa.Array, columns: dict[str, Any]
    ) -> None:
        if self.country is not None:
            country: MmdbTable = self.country.value
            records = _rows(country.lookup(distinct))
            columns[f"{side}_country"] = country.fields["country"].take(records).take(indices)
            if "city" in country.fields:  # a City database
                columns[f"{side}_city"] = country.fields["city"].take(records).take(indices)
        if self.asn is None:
            return
        asn: MmdbTable = self.asn.value
        records = _rows(asn.lookup(distinct)).take(indices)
        found = asn.fields["asn"].take(records)
        given = table.column(f"{side}_as")
        replace = pc.is_valid(found)
        if not self.config.overwrite_as:
            replace = pc.and_(replace, pc.fill_null(pc.equal(given, 0), True))
        final = pc.if_else(replace, found, given)
        columns[f"{side}_as"] = final
        if "as_name" in asn.fields:
            same = pc.fill_null(pc.equal(found, final), False)
            columns[f"{side}_as_name"] = pc.if_else(same, asn.fields["as_name"].take(records), None)

    def _exporters(self, exporter: pa.Array | pa.ChunkedArray) -> dict[str, pa.Array]:
        encoded = pc.dictionary_encode(contiguous(exporter))
        known = [self.config.exporters.get(value, {}) for value in encoded.dictionary.to_pylist()]
        return {
            f"exporter_{field}": pa.array([entry.get(field) for entry in known], pa.string()).take(encoded.indices)
            for field in ("name", "group")
            if any(field in entry for entry in self.config.exporters.values())
        }
