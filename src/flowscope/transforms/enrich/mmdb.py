"""MaxMind DB files (GeoLite2/GeoIP2, DB-IP, IPinfo, ip-location-db) as range tables of AS numbers, AS names
and countries.

The search tree is read once with numpy, level by level for all nodes of a level at once, into the ranges it
spells (``ranges.RangeTable``); each distinct data record is decoded once with the ``maxminddb`` reader
(``reader.get`` on an address of its range). Lookups are then ``searchsorted`` per distinct address: the
per-address ``reader.get`` runs at ~1.7 M/s, the table at several times that (benchmarks/bench_enrich.py).
The reader's own network iterator is not used: it leaves out the tree's aliases (``::ffff:0:0/96``, 6to4
``2002::/16``), which ``reader.get`` follows, and it fails on valid databases (``MaxMind-DB-no-ipv4-search-tree``:
``ValueError`` in maxminddb 3.2).

Record layouts: MaxMind's (``autonomous_system_number``, ``autonomous_system_organization``,
``country.iso_code``, ``city.names.en``), IPinfo's (``asn`` as ``"AS15169"``, ``as_name``, ``country`` or
``country_code``, ``city``) and DB-IP's / ip-location-db's (``country_code``, ``autonomous_system_number``,
``city``).
"""

from __future__ import annotations

import ipaddress
import mmap
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from flowscope.errors import FlowscopeError
from flowscope.transforms.enrich.ranges import V4_BLOCK_START, V4_BLOCK_STOP, RangeTable, overlay, sort_order

if TYPE_CHECKING:
    import maxminddb

_METADATA_MARKER = b"\xab\xcd\xefMaxMind.com"
_DATA_SEPARATOR = 16
FIELDS = {"asn": pa.uint32(), "as_name": pa.string(), "country": pa.string(), "city": pa.string()}
"""What a database can give, and the Arrow type of each."""
_VISITS_PER_NODE = 8
"""A valid tree visits a node at most once per alias of its subtree (IPv4: ``::/96``, ``::ffff:0:0/96``,
``2001::/32``, ``2002::/16``); more means the tree loops."""


@dataclass(frozen=True)
class MmdbTable:
    """One database: its ranges (value: record number) and the fields of each record."""

    path: Path
    database_type: str
    ranges: RangeTable
    fields: dict[str, pa.Array]
    """Field name (``FIELDS``) -> one value per record; only the fields the database holds."""

    @classmethod
    def load(cls, path: str | Path) -> MmdbTable:
        """Read ``path`` whole; a broken, unreadable or unsupported database raises one ``FlowscopeError``."""
        path = Path(path)
        database_type, ranges, records = read_database(path)
        return cls(path, database_type, ranges, _fields(path, records))

    def lookup(self, matrix: np.ndarray) -> np.ndarray:
        """The record number of each address of an (n, 16) matrix (int32, -1: in no network)."""
        return self.ranges.lookup(matrix)


def read_database(path: Path) -> tuple[str, RangeTable, list[Any]]:
    """(database type, range table whose values number the records, the decoded records) of an MMDB file."""
    import maxminddb  # here: every reader's start-up imports this module, few runs enrich (20 ms)

    try:
        reader = maxminddb.open_database(str(path))  # the C extension where installed
    except (OSError, ValueError, TypeError, KeyError, maxminddb.InvalidDatabaseError) as exc:
        # TypeError, KeyError: metadata with a key the pure-Python reader (no C extension) does not expect
        reason = exc.strerror.lower() if isinstance(exc, OSError) and exc.strerror else exc  # not "[Errno 2] ... b'x'"
        raise FlowscopeError(f"cannot read MMDB database {path}: {reason}") from None
    try:
        with path.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as view:
            return _read(path, reader, view)
    except (ValueError, KeyError, TypeError, maxminddb.InvalidDatabaseError) as exc:
        raise FlowscopeError(f"broken MMDB database {path}: {exc}") from None
    finally:
        reader.close()


def _read(path: Path, reader: maxminddb.Reader, buffer: mmap.mmap) -> tuple[str, RangeTable, list[Any]]:
    meta = reader.metadata()
    if meta.record_size not in (24, 28, 32):
        raise FlowscopeError(f"unsupported MMDB record size {meta.record_size} in {path}")
    nodes = meta.node_count
    tree_bytes = nodes * meta.record_size // 4
    data_bytes = buffer.rfind(_METADATA_MARKER) - tree_bytes - _DATA_SEPARATOR
    if data_bytes < 0:
        raise ValueError("the search tree is larger than the file")
    children = _children(np.frombuffer(buffer, np.uint8, count=tree_bytes), nodes, meta.record_size)
    if meta.ip_version == 6:
        starts, values = _walk(children, 0, 128, nodes)
        v4_root = _ipv4_root(children, nodes)
    else:
        starts, values = np.array([b""], "S16"), np.array([-1], np.int64)
        v4_root = 0
    v4_starts, v4_values = _walk(children, v4_root, 32, nodes)
    mapped = np.tile(np.frombuffer(V4_BLOCK_START, np.uint8), (len(v4_starts), 1))
    mapped[:, 12:] = v4_starts.view(np.uint8).reshape(-1, 16)[:, 12:]
    starts, values = overlay(starts, values, mapped.view("S16").ravel(), v4_values, V4_BLOCK_START, V4_BLOCK_STOP)
    found = values >= 0
    pointers = values[found]
    if (pointers < nodes + _DATA_SEPARATOR).any() or (pointers >= nodes + _DATA_SEPARATOR + data_bytes).any():
        raise ValueError("a record points outside the data section")
    _, first, record_of = np.unique(pointers, return_index=True, return_inverse=True)
    record = np.full(len(values), -1, np.int32)
    record[found] = record_of
    records = [reader.get(_address(key)) for key in starts[found][first]]
    return meta.database_type, RangeTable.from_steps(starts, record), records


def _children(tree: np.ndarray, nodes: int, record_size: int) -> np.ndarray:
    """(2, nodes) int64: the left and right record of every node (MaxMind DB spec, "Search Tree Section")."""
    raw = tree.reshape(nodes, record_size // 4).astype(np.int64)

    def word(columns: np.ndarray) -> np.ndarray:
        return (columns << (8 * np.arange(columns.shape[1] - 1, -1, -1))).sum(axis=1)

    if record_size == 24:
        return np.stack([word(raw[:, 0:3]), word(raw[:, 3:6])])
    if record_size == 28:
        middle = raw[:, 3]
        return np.stack([((middle & 0xF0) << 20) | word(raw[:, 0:3]), ((middle & 0x0F) << 24) | word(raw[:, 4:7])])
    return np.stack([word(raw[:, 0:4]), word(raw[:, 4:8])])


def _ipv4_root(children: np.ndarray, nodes: int) -> int:
    """The node (or record) an IPv4 address starts from in an IPv6 tree: 96 zero bits down from the root."""
    node = 0
    for _ in range(96):
        if node >= nodes:
            break
        node = int(children[0, node])
    return node


def _walk(children: np.ndarray, root: int, bits: int, nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Every leaf under ``root`` as (``S16`` start key, record value), breadth first, one level at a time.

    Keys are 128-bit for ``bits`` = 128 and the 32-bit address in the last 4 bytes for ``bits`` = 32. A
    record value is -1 for "no data", else the raw record (> ``nodes``: a data pointer).
    """
    width = 2 if bits == 128 else 1
    frontier = np.array([root], np.int64)
    prefix = np.zeros((1, 2), np.uint64)
    leaf_keys: list[np.ndarray] = []
    leaf_values: list[np.ndarray] = []
    if root >= nodes:
        return _leaves([prefix], [frontier], nodes)
    visits = 0
    for depth in range(bits):
        word, shift = (depth // 64, 63 - depth % 64) if width == 2 else (1, 31 - depth)
        next_nodes, next_prefix = [], []
        for side in (0, 1):
            child = children[side, frontier]
            keys = prefix.copy()
            if side:
                keys[:, word] |= np.uint64(1 << shift)
            leaf = child >= nodes
            leaf_keys.append(keys[leaf])
            leaf_values.append(child[leaf])
            next_nodes.append(child[~leaf])
            next_prefix.append(keys[~leaf])
        frontier = np.concatenate(next_nodes)
        prefix = np.concatenate(next_prefix)
        visits += len(frontier)
        if not len(frontier):
            break
        if visits > _VISITS_PER_NODE * nodes:
            raise ValueError("the search tree loops")
    else:
        raise ValueError(f"the search tree is deeper than {bits} bits")
    return _leaves(leaf_keys, leaf_values, nodes)


def _leaves(keys: list[np.ndarray], values: list[np.ndarray], nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Leaf prefixes (two uint64 words) and records as sorted ``S16`` keys and values (-1: the "no data"
    record)."""
    starts = np.ascontiguousarray(np.concatenate(keys).astype(">u8")).view("S16").ravel()
    record = np.concatenate(values)
    order = sort_order(starts)
    return starts[order], np.where(record == nodes, -1, record)[order]


def _address(key: bytes) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """A stored ``S16`` key as the address ``reader.get`` takes (IPv4-mapped ones as IPv4)."""
    address = ipaddress.IPv6Address(key.ljust(16, b"\0"))
    return address.ipv4_mapped or address


def _fields(path: Path, records: list[Any]) -> dict[str, pa.Array]:
    """The ``FIELDS`` the records hold, one value per record, whichever layout they use."""
    columns: dict[str, list[Any]] = {name: [] for name in FIELDS}
    for record in records:
        values = _read_layout(record) if isinstance(record, dict) else (None,) * len(FIELDS)
        for name, value in zip(FIELDS, values, strict=True):
            columns[name].append(value)
    arrays = {name: pa.array(values, FIELDS[name]) for name, values in columns.items()}
    held = {name: array for name, array in arrays.items() if array.null_count < len(array)}
    if records and not held:
        raise FlowscopeError(f"{path} holds no AS numbers, AS names, countries or cities in a layout flowscope reads")
    return held


def _read_layout(record: dict[str, Any]) -> tuple[int | None, str | None, str | None, str | None]:
    """(AS number, AS name, ISO country code, city name) of one record in any of the supported layouts."""
    asn = record.get("autonomous_system_number")
    if asn is None and isinstance(record.get("asn"), str | int):
        text = str(record["asn"]).upper().removeprefix("AS")
        asn = int(text) if text.isdigit() else None
    as_name = record.get("autonomous_system_organization") or record.get("as_name")
    country = record.get("country_code")
    value = record.get("country")
    if country is None and isinstance(value, dict):
        country = value.get("iso_code")
    elif country is None and isinstance(value, str) and len(value) == 2:  # IPinfo's code (its Lite: the name)
        country = value
    city = record.get("city")
    if isinstance(city, dict):  # MaxMind: names by language
        city = city.get("names", {}).get("en")
    return (
        int(asn) if isinstance(asn, int) and 0 <= asn < 1 << 32 else None,
        as_name if isinstance(as_name, str) else None,
        country.upper() if isinstance(country, str) else None,
        city if isinstance(city, str) and city else None,
    )
