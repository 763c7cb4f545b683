"""Vectorised conversions between address representations and the 16-byte column type.

IPv4 is stored IPv4-mapped (RFC 4291 section 2.5.5.2): ten zero bytes, ``ff ff``, then
the four address bytes, so v4 and v6 share one sortable binary column and a CIDR
prefix is a contiguous byte range.
"""

from __future__ import annotations

import ipaddress

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flowscope.arrays import buffer_values, contiguous
from flowscope.errors import FlowscopeError
from flowscope.schema import ADDRESS

_V4_MAPPED_PREFIX = np.array([0] * 10 + [0xFF, 0xFF], dtype=np.uint8)
_V4_MARKER_WORD = _V4_MAPPED_PREFIX[8:12].view(np.uint32)[0]  # bytes 00 00 ff ff as a native word


def _from_matrix(matrix: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """Wrap an (n, 16) uint8 matrix as a binary(16) Arrow array without copying per row."""
    matrix = np.ascontiguousarray(matrix, dtype=np.uint8)
    n = matrix.shape[0]
    mask = None if valid is None else pa.array(valid, pa.bool_())
    buffers = [None, pa.py_buffer(matrix)]  # the Arrow buffer keeps the numpy array alive: no copy
    array = pa.Array.from_buffers(ADDRESS, n, buffers)
    if mask is not None:
        array = pc.if_else(mask, array, pa.nulls(n, ADDRESS))
    return array


def from_ipv4(values: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """IPv4 addresses as host-order integers (uint32) -> binary(16) IPv4-mapped."""
    values = np.asarray(values, dtype=np.uint32)
    # four 32-bit words per address: 0, 0, the ff ff marker, the address in network order
    words = np.zeros((values.shape[0], 4), dtype=np.uint32)
    words[:, 2] = _V4_MARKER_WORD
    words[:, 3] = values.astype(">u4").view(np.uint32)
    return _from_matrix(words.view(np.uint8), valid)


def from_ipv4_bytes(matrix: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """IPv4 addresses as an (n, 4) network-order byte matrix -> binary(16)."""
    out = np.empty((matrix.shape[0], 16), dtype=np.uint8)
    out[:, :12] = _V4_MAPPED_PREFIX
    out[:, 12:] = matrix
    return _from_matrix(out, valid)


def from_ipv6_bytes(matrix: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """IPv6 addresses as an (n, 16) network-order byte matrix -> binary(16)."""
    return _from_matrix(matrix, valid)


def to_matrix(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """binary(16) -> (n, 16) uint8 matrix (nulls read as all-zero)."""
    array = contiguous(array)
    if array.null_count:
        array = pc.fill_null(array, pa.scalar(bytes(16), ADDRESS))
    return buffer_values(array, np.uint8, 16).reshape(-1, 16)


def is_ipv4(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Boolean mask: which addresses are IPv4-mapped."""
    return is_ipv4_matrix(to_matrix(array))


def is_ipv4_matrix(matrix: np.ndarray) -> np.ndarray:
    """``is_ipv4`` for addresses already in a ``to_matrix`` matrix."""
    return (matrix[:, :12] == _V4_MAPPED_PREFIX).all(axis=1)


def parse_one(text: str) -> bytes:
    """One textual IPv4/IPv6 address -> its 16 stored bytes (raises FlowscopeError)."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError as exc:
        raise FlowscopeError(f"not an IP address: {text!r}") from exc
    if address.version == 4:
        return bytes(_V4_MAPPED_PREFIX) + address.packed
    return address.packed


def format_one(value: bytes) -> str:
    """16 stored bytes -> conventional text (dotted quad for IPv4-mapped)."""
    address = ipaddress.IPv6Address(value)
    mapped = address.ipv4_mapped
    return str(mapped) if mapped is not None else str(address)


def _map_unique(array: pa.Array | pa.ChunkedArray, convert, out_type: pa.DataType) -> pa.Array:
    """Apply a per-value Python conversion once per distinct value, then gather.

    Flow data repeats addresses heavily, so converting the dictionary is far
    cheaper than converting every row.
    """
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    encoded = pc.dictionary_encode(array)
    converted = pa.array([None if v is None else convert(v) for v in encoded.dictionary.to_pylist()], out_type)
    return converted.take(encoded.indices)


def parse_text(array: pa.Array | pa.ChunkedArray, *, errors: str = "raise") -> pa.Array:
    """Textual addresses -> binary(16). ``errors='null'`` turns unparsable values into nulls."""

    def convert(text: str) -> bytes | None:
        if not text.strip():
            return None
        try:
            return parse_one(text)
        except FlowscopeError:
            if errors == "null":
                return None
            raise

    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    quads, octets = _dotted_quads(array)
    if quads is None:
        return _map_unique(array, convert, ADDRESS)
    fast = from_ipv4_bytes(octets)
    if len(fast) == len(array):
        return fast
    rest = _map_unique(array.filter(pa.array(~quads)), convert, ADDRESS)
    index = np.empty(len(array), np.int64)
    index[quads] = np.arange(len(fast))
    index[~quads] = len(fast) + np.arange(len(rest))
    return pa.concat_arrays([fast, rest]).take(pa.array(index))


# Plain dotted quads without leading zeros: everything else takes the exact per-value path.
_DOTTED_QUAD = r"^(0|[1-9][0-9]{0,2})\.(0|[1-9][0-9]{0,2})\.(0|[1-9][0-9]{0,2})\.(0|[1-9][0-9]{0,2})$"


def _dotted_quads(array: pa.Array) -> tuple[np.ndarray | None, np.ndarray]:
    """Vectorised IPv4 text parsing (flow CSVs hold millions of distinct addresses).

    Returns the mask of values parsed and their (n, 4) octets; None when no value is a dotted quad.
    """
    if not pa.types.is_string(array.type) and not pa.types.is_large_string(array.type):
        return None, np.empty((0, 4), np.uint8)
    mask = pc.fill_null(pc.match_substring_regex(array, _DOTTED_QUAD), False).to_numpy(zero_copy_only=False)
    if not mask.any():
        return None, np.empty((0, 4), np.uint8)
    parts = pc.list_flatten(pc.split_pattern(array.filter(pa.array(mask)), "."))
    octets = pc.cast(parts, pa.uint16()).to_numpy().reshape(-1, 4)
    in_range = (octets <= 255).all(axis=1)
    if not in_range.all():  # e.g. 10.0.0.300: the exact path reports it
        mask[np.flatnonzero(mask)[~in_range]] = False
        octets = octets[in_range]
    return mask, octets.astype(np.uint8)


def format_text(array: pa.Array | pa.ChunkedArray) -> pa.Array:
    """binary(16) -> conventional text."""
    return _map_unique(array, format_one, pa.string())


def cidr_bounds(cidr: str) -> tuple[bytes, bytes]:
    """The first and last stored address of a CIDR prefix (IPv4 prefixes map into ::ffff:0:0/96)."""
    try:
        network = ipaddress.ip_network(cidr.strip(), strict=False)
    except ValueError as exc:
        raise FlowscopeError(f"not a CIDR prefix: {cidr!r}") from exc
    if network.version == 4:
        prefix = bytes(_V4_MAPPED_PREFIX)
        return prefix + network.network_address.packed, prefix + network.broadcast_address.packed
    return network.network_address.packed, network.broadcast_address.packed


def format_mac(array: pa.Array | pa.ChunkedArray) -> pa.Array:
    """uint64 MAC addresses (48 bits, as GoFlow2 stores them) -> ``aa:bb:cc:dd:ee:ff``."""

    def convert(value: int) -> str:
        return ":".join(f"{b:02x}" for b in value.to_bytes(8, "big")[2:])

    return _map_unique(array, convert, pa.string())
