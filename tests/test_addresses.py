import numpy as np
import pyarrow as pa
import pytest

from flowscope import addresses
from flowscope.errors import FlowscopeError


def test_ipv4_integers_round_trip_as_mapped_addresses():
    values = np.array([0x0A000001, 0xC0A80101, 0xFFFFFFFF], dtype=np.uint32)
    text = addresses.format_text(addresses.from_ipv4(values)).to_pylist()
    assert text == ["10.0.0.1", "192.168.1.1", "255.255.255.255"]


def test_text_round_trip_for_both_families():
    text = pa.array(["2001:db8::1", "192.0.2.7", None, "::1"])
    stored = addresses.parse_text(text)
    assert stored.type == pa.binary(16)
    assert addresses.format_text(stored).to_pylist() == ["2001:db8::1", "192.0.2.7", None, "::1"]
    assert addresses.is_ipv4(stored).tolist() == [False, True, False, False]


def test_bad_text_raises_or_becomes_null():
    with pytest.raises(FlowscopeError, match="not an IP address"):
        addresses.parse_text(pa.array(["10.0.0.300"]))
    assert addresses.parse_text(pa.array(["nope", "10.0.0.1"]), errors="null").null_count == 1


def test_cidr_bounds_are_byte_ranges_that_sort_like_addresses():
    low, high = addresses.cidr_bounds("10.1.0.0/16")
    inside = addresses.parse_one("10.1.255.3")
    outside = addresses.parse_one("10.2.0.0")
    assert low <= inside <= high < outside
    low6, high6 = addresses.cidr_bounds("2001:db8::/32")
    assert low6 <= addresses.parse_one("2001:db8:ffff::1") <= high6
    with pytest.raises(FlowscopeError):
        addresses.cidr_bounds("10.0.0.0/33")


def test_matrix_helpers_and_nulls():
    matrix = np.arange(32, dtype=np.uint8).reshape(2, 16)
    stored = addresses.from_ipv6_bytes(matrix, valid=np.array([True, False]))
    assert stored.null_count == 1
    assert addresses.to_matrix(stored)[0].tolist() == list(range(16))


def test_mac_text():
    assert addresses.format_mac(pa.array([0x0011223344FF], pa.uint64())).to_pylist() == ["00:11:22:33:44:ff"]


def test_vectorised_dotted_quads_agree_with_the_exact_path():
    text = ["10.0.0.1", "192.168.255.7", "2001:db8::5", "0.0.0.0", "01.2.3.4", "1.2.3.256", None, "8.8.8.8"]
    fast = addresses.parse_text(pa.array(text), errors="null").to_pylist()
    exact = [None if t is None else _exact_or_none(t) for t in text]
    assert fast == exact


def _exact_or_none(text: str) -> bytes | None:
    try:
        return addresses.parse_one(text)
    except FlowscopeError:
        return None
