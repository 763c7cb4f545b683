import ipaddress
import random

import numpy as np
import pyarrow as pa
import pytest

from flowscope import addresses
from flowscope.address_text import convert
from flowscope.errors import FlowscopeError

WHITESPACE = " \t\n\r\x0b\x0c"


def oracle_text(stored: bytes) -> str:
    """What flowscope has always printed: IPv4-mapped as a dotted quad, the rest as ``ipaddress`` does."""
    address = ipaddress.IPv6Address(stored)
    return str(address.ipv4_mapped) if address.ipv4_mapped is not None else str(address)


def oracle_bytes(text: str) -> bytes | None:
    """What ``ipaddress`` reads (after ASCII whitespace is stripped), as stored bytes; None if nothing."""
    text = text.strip(WHITESPACE)
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    return bytes(10) + b"\xff\xff" + address.packed if address.version == 4 else address.packed


def random_v6(rng: np.random.Generator, count: int) -> np.ndarray:
    """Addresses with many zero groups (runs at the start, end, middle, ties) and small groups (short hex)."""
    matrix = rng.integers(0, 256, (count, 16), dtype=np.uint8)
    groups = matrix.view(">u2")
    groups[rng.random((count, 8)) < 0.45] = 0
    small = rng.random((count, 8)) < 0.3
    groups[small] = rng.integers(0, 0x120, small.sum())
    return matrix


EDGE_V6 = [
    "::", "::1", "1::", "::ffff:0:0", "::ffff:0.0.0.0", "::fffe:0:0", "::1:0:0", "::ffff:1:0:0", "1:0:0:2:0:0:3:4",
    "1:0:0:2::3", "1:0:2:3:4:5:6:7", "0:1:2:3:4:5:6:0", "1::2:0:0:0", "1:0:0:0:2::", "::2:0:0:0:0:3",
    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "::1.2.3.4", "64:ff9b::c000:201", "fe80::1", "2001:db8::",
]  # fmt: skip


def test_format_matches_ipaddress_on_random_and_edge_addresses() -> None:
    rng = np.random.default_rng(1)
    v4 = rng.integers(0, 2**32, 100_000, dtype=np.uint64).astype(np.uint32)
    v4[:3] = [0, 0xFFFFFFFF, 0x0A000001]
    stored = pa.concat_arrays(
        [
            addresses.from_ipv4(v4),
            addresses.from_ipv6_bytes(random_v6(rng, 100_000)),
            pa.array([ipaddress.IPv6Address(text).packed for text in EDGE_V6], pa.binary(16)),
        ]
    )
    expected = [oracle_text(value) for value in stored.to_pylist()]
    assert addresses.format_text(stored).to_pylist() == expected
    assert addresses.format_text(stored.slice(99_990, 30)).to_pylist() == expected[99_990:100_020]


def test_parse_reads_what_format_writes_and_every_other_valid_form() -> None:
    rng = np.random.default_rng(2)
    matrix = random_v6(rng, 50_000)
    matrix[::3, :12] = addresses.MAPPED_PREFIX  # a third IPv4
    stored = addresses.from_ipv6_bytes(matrix)
    assert addresses.to_matrix(addresses.parse_text(addresses.format_text(stored))).tolist() == matrix.tolist()
    values = [ipaddress.IPv6Address(bytes(row)) for row in matrix[:20_000]]
    forms = [address.exploded.upper() for address in values]  # leading zeros, upper case
    forms += [address.compressed.replace("0", "00", 1).upper() if len(address.compressed) < 35 else str(address)
              for address in values]  # fmt: skip
    forms += [str(address).rsplit(":", 2)[0] + ":" + str(ipaddress.IPv4Address(address.packed[12:]))
              for address in values if str(address).count(":") >= 3]  # fmt: skip
    parsed = addresses.parse_text(pa.array(forms), errors="null").to_pylist()
    assert parsed == [oracle_bytes(text) for text in forms]


INVALID = [
    "", " ", "256.1.1.1", "1.2.3", "1.2.3.4.5", "1..2.3", "01.2.3.4", "1.2.3.04", "1.2.3.-1", "1.2.3.4.", ".1.2.3.4",
    "1.2.3.4a", "1.2.3.٤", "1 .2.3.4", ":::", "::::", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7", "1:2:3:4:5:6:7:8::",
    "::1:2:3:4:5:6:7:8", "g::1", "12345::", "1::2::3", ":1::2", "1::2:", "1:", ":1", "::ffff:1.2.3.256",
    "::ffff:01.2.3.4", "::ffff:1.2.3", "1.2.3.4::", "::1.2.3.4:1", "1:2:3:4:5:6:7:1.2.3.4", "::1.2.3.4.5",
    "1.2.3.4%eth0", "fe80::1%", "%eth0", "fe80::1%a%b", "fe80::1%a/b", "10.0.0.0/8", "fe80::1 %eth0", "\xa010.0.0.1",
]  # fmt: skip


def test_invalid_text_is_null_or_an_error() -> None:
    blank = {"", " "}
    parsed = addresses.parse_text(pa.array(INVALID), errors="null").to_pylist()
    assert parsed == [None] * len(INVALID)
    assert [oracle_bytes(text) for text in INVALID] == [None] * len(INVALID)
    for text in INVALID:
        if text in blank:
            assert addresses.parse_text(pa.array([text])).to_pylist() == [None]  # blank: no address, no error
        else:
            with pytest.raises(FlowscopeError, match="not an IP address"):
                addresses.parse_text(pa.array(["10.0.0.1", text]))


def test_parse_agrees_with_ipaddress_on_random_and_mutated_text() -> None:
    """Property test: random strings over the address alphabet and one-character mutations of valid text."""
    generator = random.Random(5)
    alphabet = "0123456789abcdefABCDEFg:.:%/ "
    cases = ["".join(generator.choice(alphabet) for _ in range(generator.randint(0, 20))) for _ in range(50_000)]
    rng = np.random.default_rng(3)
    for row in random_v6(rng, 15_000):
        address = ipaddress.IPv6Address(bytes(row))
        for text in (str(address), str(ipaddress.IPv4Address(address.packed[12:])), address.exploded):
            at = generator.randrange(len(text) + 1)
            cases += [
                text,
                text[:at] + generator.choice(alphabet) + text[at:],
                text[:at] + text[at + 1 :],
                generator.choice(WHITESPACE) + text + generator.choice(["", "%eth0", "%", " "]),
            ]
    parsed = addresses.parse_text(pa.array(cases), errors="null").to_pylist()
    assert parsed == [oracle_bytes(text) for text in cases]


def test_surrounding_whitespace_and_zone_ids() -> None:
    text = pa.array([" 10.0.0.1\t", "\n2001:db8::1 ", "fe80::1%eth0", " fe80::2%2 ", "fe80::1%", "10.0.0.1%eth0"])
    assert addresses.format_text(addresses.parse_text(text, errors="null")).to_pylist() == [
        "10.0.0.1", "2001:db8::1", "fe80::1", "fe80::2", None, None,
    ]  # fmt: skip


def test_every_input_layout_reads_the_same() -> None:
    texts = ["10.0.0.1", None, "2001:db8::1", "", "192.0.2.300", "::ffff:192.0.2.1"] * 7_000  # > one batch
    expected = [None if t is None else oracle_bytes(t) for t in texts]
    for kind in (pa.string(), pa.large_string()):
        assert addresses.parse_text(pa.array(texts, kind), errors="null").to_pylist() == expected
    raw = pa.array([None if t is None else t.encode() for t in texts], pa.binary())
    assert addresses.parse_text(raw, errors="null").to_pylist() == expected
    chunked = pa.chunked_array([pa.array(texts[:5]), pa.array(texts[5:])])
    assert addresses.parse_text(chunked, errors="null").to_pylist() == expected
    assert addresses.parse_text(pa.array(texts).slice(3, 9), errors="null").to_pylist() == expected[3:12]
    assert addresses.parse_text(pa.array([], pa.string())).to_pylist() == []


def test_parse_reads_groups_whatever_surrounds_the_texts() -> None:
    """A group at a text's start reads the bytes before it, a group's high digits the ':' before them:
    neither may take in what lies around the texts (other texts, bytes past a 45-byte one)."""
    texts = ["z" * 45, "C::", "fz", "1:2:3:4:5:6:7:8", "g" * 44 + ":", "a:bc:def:1234:5:67:89a:bcde", "F::0"]
    texts += [text.upper() for text in texts] + ["1" * 4 + ":" + "2" * 40]
    for order in (texts, texts[::-1]):
        parsed = addresses.parse_text(pa.array(order), errors="null").to_pylist()
        assert parsed == [oracle_bytes(text) for text in order]


def test_formatting_mixed_batches_with_nulls() -> None:
    """IPv4, IPv6 and nulls interleaved across batch boundaries (the output is placed batch by batch)."""
    rng = np.random.default_rng(4)
    count = 3 * convert.CHUNK_ROWS + 17
    matrix = random_v6(rng, count)
    matrix[rng.random(count) < 0.6, :12] = addresses.MAPPED_PREFIX
    valid = rng.random(count) < 0.9
    stored = addresses.from_ipv6_bytes(matrix, valid)
    expected = [None if value is None else oracle_text(value) for value in stored.to_pylist()]
    assert addresses.format_text(stored).to_pylist() == expected
    assert addresses.format_text(pa.array([None, None], pa.binary(16))).to_pylist() == [None, None]
    assert addresses.format_text(pa.array([], pa.binary(16))).to_pylist() == []


def test_format_reads_variable_binaries_of_sixteen_bytes() -> None:
    blob = pa.array([addresses.parse_one("192.0.2.1"), None, addresses.parse_one("2001:db8::1")], pa.binary())
    assert addresses.format_text(blob).to_pylist() == ["192.0.2.1", None, "2001:db8::1"]
    with pytest.raises(FlowscopeError, match="16-byte"):
        addresses.format_text(pa.array([b"abc"], pa.binary()))


def test_ipv4_integers_round_trip_as_mapped_addresses() -> None:
    values = np.array([0x0A000001, 0xC0A80101, 0xFFFFFFFF], dtype=np.uint32)
    text = addresses.format_text(addresses.from_ipv4(values)).to_pylist()
    assert text == ["10.0.0.1", "192.168.1.1", "255.255.255.255"]


def test_text_round_trip_for_both_families() -> None:
    text = pa.array(["2001:db8::1", "192.0.2.7", None, "::1"])
    stored = addresses.parse_text(text)
    assert stored.type == pa.binary(16)
    assert addresses.format_text(stored).to_pylist() == ["2001:db8::1", "192.0.2.7", None, "::1"]
    assert addresses.is_ipv4(stored).tolist() == [False, True, False, False]


def test_one_value_helpers() -> None:
    assert addresses.parse_one(" 10.0.0.1 ") == bytes(10) + b"\xff\xff\x0a\x00\x00\x01"
    assert addresses.format_one(addresses.parse_one("2001:DB8:0::1")) == "2001:db8::1"
    for text in ("", "10.0.0.300", "nope"):
        with pytest.raises(FlowscopeError, match="not an IP address"):
            addresses.parse_one(text)


def test_cidr_bounds_are_byte_ranges_that_sort_like_addresses() -> None:
    low, high = addresses.cidr_bounds("10.1.0.0/16")
    inside = addresses.parse_one("10.1.255.3")
    outside = addresses.parse_one("10.2.0.0")
    assert low <= inside <= high < outside
    low6, high6 = addresses.cidr_bounds("2001:db8::/32")
    assert low6 <= addresses.parse_one("2001:db8:ffff::1") <= high6
    assert addresses.cidr_bounds("10.1.2.3") == (addresses.parse_one("10.1.2.3"),) * 2
    assert addresses.cidr_bounds("10.1.2.3/8")[0] == addresses.parse_one("10.0.0.0")  # host bits ignored
    mapped = addresses.cidr_bounds("::ffff:10.0.0.0/104")  # written as IPv6: an IPv6 prefix length
    assert mapped == addresses.cidr_bounds("10.0.0.0/8")
    for bad in ("10.0.0.0/33", "2001:db8::/129", "10.0.0.0/", "/8", "10.0.0.0/x", "nope/8", "10.0.0.0/٣"):
        with pytest.raises(FlowscopeError, match="not a CIDR prefix"):
            addresses.cidr_bounds(bad)


def test_matrix_helpers_and_nulls() -> None:
    matrix = np.arange(32, dtype=np.uint8).reshape(2, 16)
    stored = addresses.from_ipv6_bytes(matrix, valid=np.array([True, False]))
    assert stored.null_count == 1
    assert addresses.to_matrix(stored)[0].tolist() == list(range(16))


def test_mac_text() -> None:
    macs = pa.array([0x0011223344FF, None, 0xFFFFFFFFFFFF, 0], pa.uint64())
    assert addresses.format_mac(macs).to_pylist() == [
        "00:11:22:33:44:ff", None, "ff:ff:ff:ff:ff:ff", "00:00:00:00:00:00",
    ]  # fmt: skip
    assert addresses.format_mac(macs.slice(1, 2)).to_pylist() == [None, "ff:ff:ff:ff:ff:ff"]
