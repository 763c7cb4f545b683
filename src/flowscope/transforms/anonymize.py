"""Prefix-preserving address anonymisation: Crypto-PAn (Xu, Fan, Ammar, Moon, ICNP 2002), IPv4 and IPv6.

Two addresses that share a k-bit prefix share a k-bit prefix after anonymisation, and one key always gives
the same mapping, so prefixes, subnets and joins across lakes anonymised with one key still work. The key
is 32 bytes: the first 16 are the AES-128 key, the last 16 are encrypted once into the pad. Bit ``i`` of the
one-time pad of an address is the first bit of AES(the address's first ``i`` bits followed by the pad's
remaining bits); the address is XORed with its pad. IPv4 addresses use 32 positions with the address in the
block's first 4 bytes (the reference implementation's layout), IPv6 addresses 128 positions over the whole
block (the common extension; equal to the Go implementation's IPv6 answers).

Vectorised: every address column is dictionary-encoded, and for each bit position the blocks of all
distinct addresses are built with numpy and encrypted by one AES-ECB call (``cryptography``), so the cost
is 32 (IPv4) or 128 (IPv6) batched calls per batch, whatever the number of addresses.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flowscope.addresses import format_text, from_ipv6_bytes, is_ipv4_matrix, parse_text, to_matrix
from flowscope.arrays import contiguous
from flowscope.errors import FlowscopeError
from flowscope.schema import ADDRESS, FLOWS, Role, columns_with_role, role_of

KEY_BYTES = 32
ADDRESS_COLUMNS = columns_with_role(FLOWS, Role.ADDRESS)
"""The flow columns anonymised: every address (exporter, source, destination, next hop)."""


def read_key(path: str | Path) -> bytes:
    """A key file's 32-byte key: the raw bytes, or 64 hexadecimal characters (surrounding space ignored)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FlowscopeError(f"cannot read anonymisation key {path}: {exc.strerror or exc}") from None
    if len(data) == KEY_BYTES:
        return data
    text = data.strip()
    if len(text) == 2 * KEY_BYTES:
        try:
            return bytes.fromhex(text.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            pass
    raise FlowscopeError(f"anonymisation key {path} must hold 32 bytes, raw or as 64 hexadecimal characters")


class CryptoPAn:
    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise FlowscopeError(f"a Crypto-PAn key is {KEY_BYTES} bytes, not {len(key)}")
        # imported here: every command that reads inputs imports this module, few anonymise (8 MiB of RSS)
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        self._cipher = Cipher(algorithms.AES(key[:16]), modes.ECB())
        self.pad = np.frombuffer(self._encrypt(key[16:]), np.uint8)

    def _encrypt(self, blocks: bytes) -> bytes:
        encryptor = self._cipher.encryptor()
        return encryptor.update(blocks) + encryptor.finalize()

    def anonymize(self, addresses: np.ndarray, bits: int) -> np.ndarray:
        """An (n, bits/8) uint8 matrix of addresses (32 or 128 bits each), anonymised."""
        width = bits // 8
        count = addresses.shape[0]
        pad_bits = np.empty((count, bits), np.uint8)
        blocks = np.empty((count, 16), np.uint8)
        for position in range(bits):
            whole, part = divmod(position, 8)
            blocks[:] = self.pad
            blocks[:, :whole] = addresses[:, :whole]
            if part:
                keep = np.uint8((0xFF00 >> part) & 0xFF)
                blocks[:, whole] = (addresses[:, whole] & keep) | (self.pad[whole] & ~keep)
            encrypted = np.frombuffer(self._encrypt(blocks.tobytes()), np.uint8)
            pad_bits[:, position] = encrypted[::16] >> 7
        return addresses[:, :width] ^ np.packbits(pad_bits, axis=1)

    def anonymize_stored(self, matrix: np.ndarray) -> np.ndarray:
        """Stored 16-byte addresses (IPv4-mapped for IPv4) anonymised, each in its own family."""
        out = matrix.copy()
        v4 = is_ipv4_matrix(matrix)
        if v4.any():
            out[v4, 12:] = self.anonymize(np.ascontiguousarray(matrix[v4, 12:]), 32)
        if not v4.all():
            out[~v4] = self.anonymize(np.ascontiguousarray(matrix[~v4]), 128)
        return out


class Anonymizer:
    """``pa.Table -> pa.Table``: every address column of the flows anonymised with one key."""

    def __init__(self, key: bytes) -> None:
        self.cryptopan = CryptoPAn(key)

    @classmethod
    def from_file(cls, path: str | Path) -> Anonymizer:
        return cls(read_key(path))

    def __call__(self, table: pa.Table) -> pa.Table:
        for name in ADDRESS_COLUMNS:
            if name in table.column_names:
                table = table.set_column(table.column_names.index(name), name, self.column(table.column(name)))
        return table

    def results(self, table: pa.Table) -> pa.Table:
        """A query result with every address anonymised: binary columns the catalogue or their type calls
        addresses, and text columns whose every value is an IP address (``ip_text(src_addr)``), so SQL
        cannot show a real address by formatting it."""
        for index, field in enumerate(table.schema):
            values = table.column(index)
            if role_of(field) is Role.ADDRESS and (pa.types.is_binary(field.type) or field.type == ADDRESS):
                try:
                    values = pc.cast(values, ADDRESS)
                except pa.ArrowInvalid:
                    raise FlowscopeError(f"column {field.name} holds values that are not 16-byte addresses") from None
                table = table.set_column(index, field, pc.cast(self.column(values), field.type))
            elif pa.types.is_string(field.type) and len(values) > values.null_count:
                parsed = parse_text(contiguous(values), errors="null")
                if parsed.null_count == values.null_count:
                    table = table.set_column(index, field, format_text(self.column(parsed)))
        return table

    def column(self, values: pa.Array | pa.ChunkedArray) -> pa.Array:
        """One address column anonymised, each distinct address once (nulls stay null)."""
        encoded = pc.dictionary_encode(contiguous(values))
        if not len(encoded.dictionary):
            return contiguous(values)
        anonymised = from_ipv6_bytes(self.cryptopan.anonymize_stored(to_matrix(encoded.dictionary)))
        return anonymised.take(encoded.indices)
