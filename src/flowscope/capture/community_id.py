"""Community ID v1 flow hashes (github.com/corelight/community-id-spec), computed for whole arrays.

The hash input (seed, ordered endpoints, protocol, ports) is at most 40 bytes, so every flow's
SHA-1 is exactly one 64-byte block: the compression function runs once over arrays of words,
which costs a few hundred numpy operations per batch instead of a ``hashlib`` call per flow.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

PROTO_ICMP = 1
PROTO_ICMP6 = 58
PORT_PROTOS = (1, 6, 17, 58, 132)

# ICMP types that have a reply/request counterpart (Zeek's mapping, adopted by the spec): such a
# message hashes as (type, counterpart) and may be flipped; any other type is one-way (type, code).
_ICMP4_PAIRS = {8: 0, 0: 8, 13: 14, 14: 13, 15: 16, 16: 15, 10: 9, 9: 10, 17: 18, 18: 17}
_ICMP6_PAIRS = {128: 129, 129: 128, 130: 131, 131: 130, 133: 134, 134: 133, 135: 136, 136: 135,
                139: 140, 140: 139, 144: 145, 145: 144}  # fmt: skip


def _pair_table(pairs: dict[int, int]) -> tuple[np.ndarray, np.ndarray]:
    counterpart = np.zeros(256, np.uint16)
    two_way = np.zeros(256, bool)
    for kind, other in pairs.items():
        counterpart[kind] = other
        two_way[kind] = True
    return counterpart, two_way


_ICMP4 = _pair_table(_ICMP4_PAIRS)
_ICMP6 = _pair_table(_ICMP6_PAIRS)
_V4_PREFIX = np.array([0] * 10 + [0xFF, 0xFF], np.uint8)
_B64 = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", np.uint8)
_K = (0x5A827999, 0x6ED9EBA1, 0x8F1BBCDC, 0xCA62C1D6)
_H0 = (0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0)


def _rotl_into(x: np.ndarray, bits: int, out: np.ndarray, spare: np.ndarray) -> np.ndarray:
    """``out = x rotated left by bits`` (32-bit), using ``spare`` as scratch; ``out`` may be ``x``."""
    np.right_shift(x, np.uint32(32 - bits), out=spare)
    np.left_shift(x, np.uint32(bits), out=out)
    np.bitwise_or(out, spare, out=out)
    return out


def sha1_single_block(blocks: np.ndarray) -> np.ndarray:
    """SHA-1 (FIPS 180-4) of messages already padded to one 64-byte block each: (n, 64) -> (n, 20).

    All arithmetic is in place on preallocated word arrays: this runs once per exported flow batch
    and allocation would otherwise dominate.
    """
    n = blocks.shape[0]
    w = np.empty((16, n), np.uint32)  # the message schedule as a ring of 16 words (64 bytes per message)
    w[:] = np.ascontiguousarray(blocks).view(">u4").T
    spare = np.empty(n, np.uint32)
    a, b, c, d, e = (np.full(n, h, np.uint32) for h in _H0)
    f = np.empty(n, np.uint32)
    rotated = np.empty(n, np.uint32)
    for t in range(80):
        if t < 20:  # choose: d ^ (b & (c ^ d))
            np.bitwise_xor(c, d, out=f)
            f &= b
            f ^= d
        elif t < 40 or t >= 60:  # parity
            np.bitwise_xor(b, c, out=f)
            f ^= d
        else:  # majority: (b & c) | (d & (b | c))
            np.bitwise_or(b, c, out=f)
            f &= d
            np.bitwise_and(b, c, out=spare)
            f |= spare
        e += f  # e becomes the new a: e + f + rotl(a, 5) + K + w[t]
        e += _rotl_into(a, 5, rotated, spare)
        e += np.uint32(_K[t // 20])
        if t >= 16:  # w[t] = rotl1(w[t-3] ^ w[t-8] ^ w[t-14] ^ w[t-16]), stored over w[t-16]
            row = w[t % 16]
            row ^= w[(t - 3) % 16]
            row ^= w[(t - 8) % 16]
            row ^= w[(t - 14) % 16]
            _rotl_into(row, 1, row, spare)
        e += w[t % 16]
        _rotl_into(b, 30, b, spare)  # b becomes the new c
        a, b, c, d, e = e, a, b, c, d
    digest = np.stack([a, b, c, d, e], axis=1) + np.array(_H0, np.uint32)
    return digest.astype(">u4").view(np.uint8).reshape(n, 20)


def _base64_digest(digest: np.ndarray) -> np.ndarray:
    """(n, 20) bytes -> (n, 28) base64 characters (the last one is the '=' pad)."""
    n = digest.shape[0]
    padded = np.zeros((n, 21), np.uint32)
    padded[:, :20] = digest
    groups = padded.reshape(n, 7, 3)
    value = (groups[:, :, 0] << 16) | (groups[:, :, 1] << 8) | groups[:, :, 2]
    sextets = np.stack([(value >> shift) & 63 for shift in (18, 12, 6, 0)], axis=2).reshape(n, 28)
    chars = _B64[sextets]
    chars[:, 27] = ord("=")
    return chars


def _hash_inputs(src: np.ndarray, dst: np.ndarray, proto: np.ndarray, sport: np.ndarray, dport: np.ndarray,
                 seed: int) -> np.ndarray:  # fmt: skip
    """One padded SHA-1 block per row: seed . saddr . daddr . proto . 0 [. sport . dport]."""
    n = src.shape[0]
    blocks = np.zeros((n, 64), np.uint8)
    is_v4 = (src[:, :12] == _V4_PREFIX).all(axis=1) & (dst[:, :12] == _V4_PREFIX).all(axis=1)
    has_ports = np.isin(proto, PORT_PROTOS)
    blocks[:, 0] = seed >> 8
    blocks[:, 1] = seed & 0xFF
    for v4 in (True, False):
        for ports in (True, False):
            rows = np.flatnonzero((is_v4 == v4) & (has_ports == ports))
            if rows.size == 0:
                continue
            width = 4 if v4 else 16
            part = np.zeros((rows.size, 64), np.uint8)
            part[:, :2] = blocks[rows, :2]
            part[:, 2 : 2 + width] = src[rows, 16 - width :]
            part[:, 2 + width : 2 + 2 * width] = dst[rows, 16 - width :]
            at = 2 + 2 * width
            part[:, at] = proto[rows]
            at += 2
            if ports:
                part[:, at : at + 2] = sport[rows].astype(">u2").view(np.uint8).reshape(-1, 2)
                part[:, at + 2 : at + 4] = dport[rows].astype(">u2").view(np.uint8).reshape(-1, 2)
                at += 4
            part[:, at] = 0x80
            part[:, 56:64] = np.array([at * 8], ">u8").view(np.uint8)
            blocks[rows] = part
    return blocks


def community_ids(src: np.ndarray, dst: np.ndarray, proto: np.ndarray, src_port: np.ndarray,
                  dst_port: np.ndarray, icmp_type: np.ndarray, icmp_code: np.ndarray,
                  seed: int = 0) -> pa.Array:  # fmt: skip
    """Community ID v1 strings for flows given as arrays (addresses as (n, 16) IPv4-mapped bytes)."""
    n = src.shape[0]
    sport = src_port.astype(np.uint16)
    dport = dst_port.astype(np.uint16)
    one_way = np.zeros(n, bool)
    for number, (counterpart, two_way) in ((PROTO_ICMP, _ICMP4), (PROTO_ICMP6, _ICMP6)):
        rows = proto == number
        kinds = icmp_type[rows]
        sport[rows] = kinds
        dport[rows] = np.where(two_way[kinds], counterpart[kinds], icmp_code[rows])
        one_way[rows] = ~two_way[kinds]
    src_key = np.ascontiguousarray(src).view(">u8").astype(np.uint64)
    dst_key = np.ascontiguousarray(dst).view(">u8").astype(np.uint64)
    address_less = (src_key[:, 0] < dst_key[:, 0]) | (
        (src_key[:, 0] == dst_key[:, 0]) & (src_key[:, 1] < dst_key[:, 1])
    )
    same_address = (src_key == dst_key).all(axis=1)
    ordered = one_way | address_less | (same_address & (sport < dport))
    flip = ~ordered
    first = np.where(flip[:, None], dst, src)
    second = np.where(flip[:, None], src, dst)
    first_port = np.where(flip, dport, sport)
    second_port = np.where(flip, sport, dport)
    digest = sha1_single_block(_hash_inputs(first, second, proto, first_port, second_port, seed))
    text = np.empty((n, 30), np.uint8)
    text[:, 0] = ord("1")
    text[:, 1] = ord(":")
    text[:, 2:] = _base64_digest(digest)
    offsets = np.arange(0, 30 * (n + 1), 30, dtype=np.int32)
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(text.tobytes())])
