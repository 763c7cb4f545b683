"""MMDB range tables against MaxMind's test databases: their source data, and ``maxminddb``'s own answers."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

import maxminddb
import numpy as np
import pytest
from tests.conftest import shared_data, skip_or_fail

from flowscope.errors import FlowscopeError
from flowscope.transforms.enrich.mmdb import MmdbTable, read_database

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _matrix(addresses: list[Address]) -> np.ndarray:
    stored = [(b"\0" * 10 + b"\xff\xff" + a.packed) if a.version == 4 else a.packed for a in addresses]
    return np.frombuffer(b"".join(stored), np.uint8).reshape(-1, 16)


def _answers(table: MmdbTable, addresses: list[Address]) -> list[tuple[Any, ...]]:
    records = table.lookup(_matrix(addresses))
    held = table.fields
    names = ("asn", "as_name", "country", "city")
    columns = {name: held[name].to_pylist() if name in held else None for name in names}
    return [tuple(None if r < 0 or values is None else values[r] for values in columns.values()) for r in records]


def _maxmind_layout(record: dict[str, Any] | None) -> tuple[Any, ...]:
    record = record or {}
    return (
        record.get("autonomous_system_number"),
        record.get("autonomous_system_organization"),
        record.get("country", {}).get("iso_code"),
        record.get("city", {}).get("names", {}).get("en"),
    )


@pytest.mark.parametrize("name", ["GeoLite2-ASN-Test", "GeoLite2-Country-Test", "GeoIP2-ISP-Test"])
def test_lookups_equal_the_source_data(name: str) -> None:
    table = MmdbTable.load(shared_data("geoip", "maxmind", f"{name}.mmdb"))
    source = json.loads(shared_data("geoip", "maxmind", "source-data", f"{name}.json").read_text())
    networks = sorted(
        ((ipaddress.ip_network(cidr), record) for entry in source for cidr, record in entry.items()),
        key=lambda item: (item[0].version, item[0].network_address, item[0].prefixlen),
    )
    # a network holding listed subnets is followed by one of them in this order: check only the others
    innermost = [
        (network, record)
        for (network, record), (after, _) in zip(networks, [*networks[1:], networks[0]], strict=True)
        if after.version != network.version or not after.subnet_of(network)  # type: ignore[arg-type]
    ]
    addresses = [a for network, _ in innermost for a in (network.network_address, network.broadcast_address)]
    expected = [_maxmind_layout(record) for _, record in innermost for _ in range(2)]
    assert _answers(table, addresses) == expected
    assert len(innermost) >= len(networks) - 1


def _random_addresses(table: MmdbTable, count: int, seed: int) -> list[Address]:
    """Half IPv4, half IPv6: uniformly random ones (mostly in no network) and ones just past range starts."""
    rng = np.random.default_rng(seed)
    quarter = count // 4
    v4 = rng.integers(0, 1 << 32, quarter, dtype=np.uint64).astype(np.uint32)
    starts = table.ranges.v4_starts
    near = starts[rng.integers(0, len(starts), quarter)] + rng.integers(0, 256, quarter).astype(np.uint32)
    v6 = rng.integers(0, 256, (2 * quarter, 16), dtype=np.uint8)
    prefixes = np.array([[0x20, 0x01], [0x24, 0x00], [0x2A, 0x02], [0x20, 0x02], [0x2C, 0x0F], [0, 0]], np.uint8)
    v6[quarter:, :2] = prefixes[rng.integers(0, len(prefixes), quarter)]
    v6[-100:, :12] = 0  # IPv4-compatible ::a.b.c.d, which the tree answers from its IPv4 part
    return [
        *(ipaddress.IPv4Address(int(a)) for a in np.concatenate([v4, near])),
        *(ipaddress.IPv6Address(row.tobytes()) for row in v6),
    ]


@pytest.mark.parametrize("name", ["GeoLite2-ASN-Test", "GeoIP2-City-Test", "GeoIP2-Country-Test"])
def test_vectorised_lookups_equal_maxminddb(name: str) -> None:
    path = shared_data("geoip", "maxmind", f"{name}.mmdb")
    table = MmdbTable.load(path)
    addresses = _random_addresses(table, 100_000, seed=len(name))
    with maxminddb.open_database(str(path)) as reader:
        expected = [_maxmind_layout(reader.get(a)) for a in addresses]  # type: ignore[arg-type]
    answers = _answers(table, addresses)
    assert answers == expected
    assert sum(answer == (None,) * 4 for answer in answers) > 1000  # outside every network


def test_ipv4_only_database_holds_no_ipv6() -> None:
    table = MmdbTable.load(shared_data("geoip", "maxmind", "GeoIP2-Country-Test.mmdb"))
    assert (
        _answers(table, [ipaddress.ip_address("2.125.160.216"), ipaddress.ip_address("::ffff:2.125.160.216")])
        == [(None, None, "GB", None)] * 2
    )


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("MaxMind-DB-test-broken-pointers-24", "broken MMDB database"),
        ("MaxMind-DB-test-broken-search-tree-24", "broken MMDB database"),
        ("GeoIP2-Connection-Type-Test", "holds no AS numbers, AS names, countries or cities"),
        ("MaxMind-DB-test-decoder", "holds no AS numbers, AS names, countries or cities"),
    ],
)
def test_broken_or_unsupported_databases_give_one_error(name: str, message: str) -> None:
    with pytest.raises(FlowscopeError, match=message) as error:
        MmdbTable.load(shared_data("geoip", "maxmind", f"{name}.mmdb"))
    assert "\n" not in str(error.value) and name in str(error.value)


def test_a_missing_database_is_named_without_errno_or_bytes(tmp_path: Path) -> None:
    path = tmp_path / "GeoLite2-ASN.mmdb"
    with pytest.raises(FlowscopeError) as error:
        MmdbTable.load(path)
    assert str(error.value) == f"cannot read MMDB database {path}: no such file or directory"


def test_a_file_that_is_no_database_is_one_error(tmp_path) -> None:
    path = tmp_path / "asn.mmdb"
    path.write_bytes(b"not a database" * 100)
    with pytest.raises(FlowscopeError, match="cannot read MMDB database"):
        MmdbTable.load(path)


def _write_database(path: Path, records: dict[str, dict[str, Any]]) -> Path:
    try:
        from mmdb_writer import MMDBWriter
        from netaddr import IPNetwork, IPSet
    except ImportError:
        skip_or_fail("mmdb-writer is not installed (pip install -e '.[test]')")
    writer = MMDBWriter(ip_version=6, database_type="layout-test", ipv4_compatible=True)
    for cidr, record in records.items():
        writer.insert_network(IPSet([IPNetwork(cidr)]), record)
    writer.to_db_file(str(path))
    return path


@pytest.mark.parametrize(
    "record",
    [
        {"asn": "AS15169", "as_name": "Google LLC", "country": "US", "city": "Mountain View"},  # IPinfo
        {"asn": "AS15169", "as_name": "Google LLC", "country_code": "us", "country": "United States"},  # IPinfo Lite
        {"autonomous_system_number": 15169, "autonomous_system_organization": "Google LLC",
         "country_code": "US", "city": "Mountain View"},  # DB-IP, ip-location-db
    ],
)  # fmt: skip
def test_ipinfo_dbip_and_ip_location_db_layouts(tmp_path: Path, record: dict[str, Any]) -> None:
    table = MmdbTable.load(_write_database(tmp_path / "layout.mmdb", {"8.8.8.0/24": record, "2001:4860::/32": record}))
    answers = _answers(table, [ipaddress.ip_address(a) for a in ("8.8.8.8", "2001:4860::8888", "9.9.9.9")])
    city = record.get("city")
    assert answers == [(15169, "Google LLC", "US", city), (15169, "Google LLC", "US", city), (None,) * 4]


@pytest.mark.parametrize(
    "name",
    [
        "MaxMind-DB-test-ipv4-24",  # an IPv4 tree, 24-bit records
        "MaxMind-DB-test-mixed-24",
        "MaxMind-DB-test-mixed-32",  # 32-bit records
        "MaxMind-DB-test-ipv6-32",  # IPv6 only
        "MaxMind-DB-no-ipv4-search-tree",  # maxminddb 3.2's own network iterator fails on this one
        "MaxMind-DB-test-nested",
    ],
)
def test_every_tree_layout_answers_as_maxminddb(name: str) -> None:
    path = shared_data("geoip", "maxmind", f"{name}.mmdb")
    _, ranges, records = read_database(path)
    table = MmdbTable(path, name, ranges, {})
    addresses = _random_addresses(table, 20_000, seed=3)
    addresses += [ipaddress.ip_address(a) for a in ("1.1.1.1", "1.1.1.3", "::1.1.1.1", "::1:ffff:ffff", "::2:0:0")]
    with maxminddb.open_database(str(path)) as reader:
        expected = []
        for address in addresses:
            try:
                expected.append(reader.get(address))  # type: ignore[arg-type]
            except ValueError:  # an IPv6 address in an IPv4 database
                expected.append(None)
    found = ranges.lookup(_matrix(addresses))
    assert [None if r < 0 else records[r] for r in found] == expected


def test_unexpected_metadata_is_one_error_with_the_pure_python_reader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by fuzzing (fuzz/targets/mmdb.py): where maxminddb runs without its C extension, a metadata key
    it does not know raised TypeError out of the load (and out of a collector's reload)."""
    path = _write_database(tmp_path / "odd.mmdb", {"192.0.2.0/24": {"country": "US"}})
    data = path.read_bytes()
    assert b"database_type" in data
    path.write_bytes(data.replace(b"database_type", b"database_typo"))
    monkeypatch.setattr(maxminddb, "open_database", lambda p: maxminddb.Reader(p, maxminddb.MODE_MMAP))
    with pytest.raises(FlowscopeError, match="cannot read MMDB database"):
        MmdbTable.load(path)
