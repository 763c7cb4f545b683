"""Community ID v1 flow hashes (github.com/corelight/community-id-spec), computed for whole arrays.

The hash input (seed, ordered endpoints, protocol, ports) is at most 40 bytes, so every flow's
SHA-1 is exactly one 64-byte block: the compression function runs once over arrays of words,
which costs about a thousand numpy operations per batch instead of a ``hashlib`` call per flow.
"""

from __future__ import annotations

import base64

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
_PORT_PROTOS = np.isin(np.arange(256), PORT_PROTOS)
_K = (0x5A827999, 0x6ED9EBA1, 0x8F1BBCDC, 0xCA62C1D6)
_H0 = (0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0)
_PAD = np.uint32(0x80000000)  # the 0x80 byte that ends a message, at the start of a word
SHA1_ROWS = 1 << 16  # flows hashed per round of numpy calls


def _rotl_into(x: np.ndarray, bits: int, out: np.ndarray, spare: np.ndarray) -> np.ndarray:
    """``out = x rotated left by bits`` (32-bit), using ``spare`` as scratch; ``out`` may be ``x``."""
    np.right_shift(x, np.uint32(32 - bits), out=spare)
    np.left_shift(x, np.uint32(bits), out=out)
    np.bitwise_or(out, spare, out=out)
    return out


def _sha1_words(block: np.ndarray) -> np.ndarray:
    """SHA-1 (FIPS 180-4) compression of one padded block per column: (16, n) uint32 words -> (5, n) digest words.

    Every numpy call here costs microseconds of overhead whatever ``n`` is, so the work is cut
    into as few calls as possible: the message schedule is expanded three words per call
    (word t needs t-3 at the nearest) with each round's constant folded in, and the rounds
    work in place on preallocated arrays.
    """
    n = block.shape[1]
    w = np.empty((82, n), np.uint32)
    w[:16] = block
    spare = np.empty((3, n), np.uint32)
    for t in range(16, 80, 3):
        part = w[t : t + 3]
        np.bitwise_xor(w[t - 3 : t], w[t - 8 : t - 5], out=part)
        part ^= w[t - 14 : t - 11]
        part ^= w[t - 16 : t - 13]
        _rotl_into(part, 1, part, spare)
    for quarter, constant in enumerate(_K):
        w[20 * quarter : 20 * quarter + 20] += np.uint32(constant)
    spare = spare[0]
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
        e += f  # e becomes the new a: e + f + rotl(a, 5) + w[t] + K
        e += _rotl_into(a, 5, rotated, spare)
        e += w[t]
        _rotl_into(b, 30, b, spare)  # b becomes the new c
        a, b, c, d, e = e, a, b, c, d
    return np.stack([a, b, c, d, e]) + np.array(_H0, np.uint32)[:, None]


def sha1_single_block(blocks: np.ndarray) -> np.ndarray:
    """SHA-1 of messages already padded to one 64-byte block each: (n, 64) -> (n, 20)."""
    words = np.ascontiguousarray(np.ascontiguousarray(blocks).view(">u4").T, dtype=np.uint32)
    return _digest_bytes(_sha1_words(words))


def _digest_bytes(digest: np.ndarray) -> np.ndarray:
    """(5, n) digest words -> (n, 20) bytes."""
    return np.ascontiguousarray(digest.T, dtype=">u4").view(np.uint8)


def _address_words(addresses: np.ndarray) -> np.ndarray:
    """(n, 16) network-order bytes -> (4, n) uint32 words, most significant first."""
    return np.ascontiguousarray(np.ascontiguousarray(addresses).view(">u4").T, dtype=np.uint32)


def _hash_inputs(first: list[np.ndarray], second: list[np.ndarray], proto: np.ndarray, sport: np.ndarray,
                 dport: np.ndarray, seed: int) -> np.ndarray:  # fmt: skip
    """One padded SHA-1 block per flow as (16, n) words: seed . saddr . daddr . proto . 0 [. sport . dport].

    ``first``/``second`` are each address's four words (most significant first); IPv4-mapped pairs
    hash their 4-byte form. The message is 2 bytes off word alignment, so each word joins the
    halves of two address words.
    """
    n = proto.size
    block = np.zeros((16, n), np.uint32)
    has_ports = _PORT_PROTOS[proto]
    ports = np.where(has_ports, (sport << 16) | dport, _PAD)
    pad = np.where(has_ports, _PAD, np.uint32(0))
    proto_word = proto.astype(np.uint32) << 8
    is_v4 = (first[0] == 0) & (first[1] == 0) & (first[2] == 0xFFFF)
    is_v4 &= (second[0] == 0) & (second[1] == 0) & (second[2] == 0xFFFF)
    # IPv4 layout for every flow: seed a0 a1 | a2 a3 b0 b1 | b2 b3 proto 0 | ports | 0x80
    block[0] = (seed << 16) | (first[3] >> 16)
    block[1] = (first[3] << 16) | (second[3] >> 16)
    block[2] = (second[3] << 16) | proto_word
    block[3] = ports
    block[4] = pad
    block[15] = np.where(has_ports, 16 * 8, 12 * 8)
    v6 = np.flatnonzero(~is_v4)
    if v6.size:  # 16-byte layout: seed + 32 address bytes take words 0-8
        words = np.stack([word[v6] for word in (*first, *second)])
        block[0, v6] = (seed << 16) | (words[0] >> 16)
        block[1:8, v6] = (words[:-1] << 16) | (words[1:] >> 16)
        block[8, v6] = (words[7] << 16) | proto_word[v6]
        block[9, v6] = ports[v6]
        block[10, v6] = pad[v6]
        block[15, v6] = np.where(has_ports[v6], 40 * 8, 36 * 8)
    return block


def _base64_digests(digest: np.ndarray) -> np.ndarray:
    """(5, n) digest words -> (n, 28) base64 characters (the last one is the '=' pad).

    Each 20-byte digest is padded to 21 bytes, a multiple of 3, so one ``b64encode`` of all of
    them yields exactly 28 characters per digest: the first 27 are the digest's own.
    """
    n = digest.shape[1]
    padded = np.zeros((n, 21), np.uint8)
    padded[:, :20] = _digest_bytes(digest)
    chars = np.frombuffer(base64.b64encode(padded.tobytes()), np.uint8).reshape(n, 28).copy()
    chars[:, 27] = ord("=")
    return chars


def community_ids(src: np.ndarray, dst: np.ndarray, proto: np.ndarray, src_port: np.ndarray,
                  dst_port: np.ndarray, icmp_type: np.ndarray, icmp_code: np.ndarray,
                  seed: int = 0) -> pa.Array:  # fmt: skip
    """Community ID v1 strings for flows given as arrays (addresses as (n, 16) IPv4-mapped bytes)."""
    n = src.shape[0]
    sport = src_port.astype(np.uint32)
    dport = dst_port.astype(np.uint32)
    one_way = np.zeros(n, bool)
    for number, (counterpart, two_way) in ((PROTO_ICMP, _ICMP4), (PROTO_ICMP6, _ICMP6)):
        rows = proto == number
        if not rows.any():
            continue
        kinds = icmp_type[rows]
        sport[rows] = kinds
        dport[rows] = np.where(two_way[kinds], counterpart[kinds], icmp_code[rows])
        one_way[rows] = ~two_way[kinds]
    src_words, dst_words = _address_words(src), _address_words(dst)
    # the endpoints in order: (address, port) ascending, unless the flow is one-way ICMP
    flip = np.zeros(n, bool)
    decided = one_way.copy()
    for mine, other in zip((*src_words, sport), (*dst_words, dport), strict=True):
        flip |= ~decided & (mine > other)
        decided |= mine != other
    first = [np.where(flip, theirs, mine) for mine, theirs in zip(src_words, dst_words, strict=True)]
    second = [np.where(flip, mine, theirs) for mine, theirs in zip(src_words, dst_words, strict=True)]
    first_port = np.where(flip, dport, sport)
    second_port = np.where(flip, sport, dport)
    block = _hash_inputs(first, second, proto, first_port, second_port, seed)
    digest = np.empty((5, n), np.uint32)
    for start in range(0, n, SHA1_ROWS):  # the expanded schedule takes 328 bytes a flow: bound it
        digest[:, start : start + SHA1_ROWS] = _sha1_words(block[:, start : start + SHA1_ROWS])
    text = np.empty((n, 30), np.uint8)
    text[:, 0] = ord("1")
    text[:, 1] = ord(":")
    text[:, 2:] = _base64_digests(digest)
    offsets = np.arange(0, 30 * (n + 1), 30, dtype=np.int32)
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(text)])
