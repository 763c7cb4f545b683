"""Networks and interfaces files: longest-prefix match, file formats, errors."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from flowscope.addresses import parse_one, parse_text
from flowscope.errors import FlowscopeError
from flowscope.transforms.enrich.interfaces import Interfaces
from flowscope.transforms.enrich.networks import Networks


def _names(networks: Networks, addresses: list[str]) -> list[str | None]:
    matrix = np.frombuffer(b"".join(parse_one(a) for a in addresses), np.uint8).reshape(-1, 16)
    names = networks.attributes.column("name").to_pylist()
    return [None if row < 0 else names[row] for row in networks.lookup(matrix)]


NESTED = [
    {"cidr": "0.0.0.0/0", "name": "v4-any"},
    {"cidr": "10.0.0.0/8", "name": "ten"},
    {"cidr": "10.1.0.0/16", "name": "ten-one"},
    {"cidr": "10.1.2.0/24", "name": "ten-one-two"},
    {"cidr": "10.1.2.3/32", "name": "host"},
    {"cidr": "10.255.255.255/32", "name": "last"},
    {"cidr": "255.255.255.255/32", "name": "broadcast"},
    {"cidr": "::/0", "name": "v6-any"},
    {"cidr": "2001:db8::/32", "name": "doc"},
    {"cidr": "2001:db8:1::/48", "name": "doc-one"},
    {"cidr": "2001:db8:1::1/128", "name": "doc-host"},
    {"cidr": "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128", "name": "top"},
    {"cidr": "::ffff:192.168.0.0/112", "name": "mapped"},
]


@pytest.mark.parametrize(
    ("address", "name"),
    [
        ("10.1.2.3", "host"),
        ("10.1.2.4", "ten-one-two"),
        ("10.1.2.2", "ten-one-two"),
        ("10.1.3.0", "ten-one"),
        ("10.2.0.0", "ten"),
        ("10.255.255.254", "ten"),
        ("10.255.255.255", "last"),
        ("11.0.0.0", "v4-any"),
        ("9.255.255.255", "v4-any"),
        ("0.0.0.0", "v4-any"),
        ("255.255.255.254", "v4-any"),
        ("255.255.255.255", "broadcast"),
        ("192.168.7.1", "mapped"),  # an IPv4-mapped IPv6 prefix is the IPv4 prefix
        ("192.169.0.0", "v4-any"),
        ("2001:db8:1::1", "doc-host"),
        ("2001:db8:1::2", "doc-one"),
        ("2001:db8:2::", "doc"),
        ("2001:db9::", "v6-any"),
        ("::", "v6-any"),
        ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", "v6-any"),
        ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "top"),
    ],
)
def test_most_specific_prefix_wins(address: str, name: str) -> None:
    assert _names(Networks.from_rows(NESTED), [address]) == [name]


def test_v6_prefixes_do_not_cover_ipv4_and_v4_prefixes_do_not_cover_ipv6() -> None:
    networks = Networks.from_rows([{"cidr": "::/0", "name": "v6"}, {"cidr": "10.0.0.0/8", "name": "ten"}])
    assert _names(networks, ["10.0.0.1", "11.0.0.1", "::a00:1", "2001:db8::1"]) == ["ten", None, "v6", "v6"]


def test_random_addresses_match_a_plain_longest_prefix_search() -> None:
    rng = np.random.default_rng(7)
    rows = [{"cidr": f"10.{a}.0.0/{16 + b}", "name": f"n{i}"} for i, (a, b) in enumerate(rng.integers(0, 8, (40, 2)))]
    rows = list({row["cidr"]: row for row in rows}.values())
    rows += [{"cidr": "10.0.0.0/8", "name": "ten"}, {"cidr": "10.3.0.7/32", "name": "host"}]
    networks = Networks.from_rows(rows)
    parsed = [(ipaddress.ip_network(row["cidr"]), row["name"]) for row in rows]
    addresses = [str(ipaddress.IPv4Address((10 << 24) + int(x))) for x in rng.integers(0, 1 << 20, 2000)]
    addresses.append("10.3.0.7")

    def expected(text: str) -> str | None:
        address = ipaddress.ip_address(text)
        holding = [(n.prefixlen, name) for n, name in parsed if address in n]
        return max(holding)[1] if holding else None

    assert _names(networks, addresses) == [expected(a) for a in addresses]


def test_csv_and_toml_files(tmp_path: Path) -> None:
    csv = tmp_path / "networks.csv"
    csv.write_text("# our networks\ncidr,name,role,site\n10.0.0.0/8,corp,servers,paris\n2001:db8::/32,lab,,\n")
    toml = tmp_path / "networks.toml"
    toml.write_text('[networks."10.0.0.0/8"]\nname = "corp"\nrole = "servers"\nsite = "paris"\n'
                    '[[network]]\ncidr = "2001:db8::/32"\nname = "lab"\n')  # fmt: skip
    for path in (csv, toml):
        networks = Networks.load(path)
        assert networks.attributes.column_names == ["name", "role", "site"]  # only the attributes given
        assert _names(networks, ["10.9.9.9", "2001:db8::5", "192.0.2.1"]) == ["corp", "lab", None]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([{"cidr": "10.0.0.0/8"}, {"cidr": "10.0.0.0/8"}], "10.0.0.0/8 is given twice"),
        ([{"cidr": "10.0.0.300/8"}], "not a CIDR prefix"),
        ([{"name": "x"}], "network 1 has no cidr"),
    ],
)
def test_bad_networks_are_one_error(rows: list[dict[str, str]], message: str) -> None:
    with pytest.raises(FlowscopeError, match=message):
        Networks.from_rows(rows)


def test_csv_without_cidr_column(tmp_path: Path) -> None:
    path = tmp_path / "n.csv"
    path.write_text("prefix,name\n10.0.0.0/8,x\n")
    with pytest.raises(FlowscopeError, match="has no cidr"):
        Networks.load(path)


def test_interfaces_by_exporter_and_ifindex(tmp_path: Path) -> None:
    path = tmp_path / "interfaces.csv"
    path.write_text(
        "exporter,ifindex,name,description,speed,boundary\n"
        "192.0.2.1,3,xe-0/0/3,transit A,10000000000,external\n"
        "192.0.2.1,4,xe-0/0/4,,,internal\n"
        "2001:db8::1,3,et-1,,,External\n"
    )
    interfaces = Interfaces.load(path)
    exporters = parse_text(pa.array(["192.0.2.1", "192.0.2.1", "192.0.2.1", "2001:db8::1", "192.0.2.9", None]))
    rows = interfaces.lookup(exporters, pa.array([3, 4, 5, 3, 3, None], pa.uint32()))
    names = interfaces.attributes.column("name").to_pylist()
    assert [None if r < 0 else names[r] for r in rows] == ["xe-0/0/3", "xe-0/0/4", None, "et-1", None, None]
    boundaries = interfaces.attributes.column("boundary").to_pylist()
    assert [boundaries[r] for r in rows if r >= 0] == ["external", "internal", "external"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("192.0.2.1,x,a,,,", "interface 1"),
        ("nowhere,3,a,,,", "not an IP address"),
        ("192.0.2.1,3,a,,,outside", "boundary must be one of"),
        ("192.0.2.1,4294967296,a,,,", "not a 32-bit number"),
    ],
)
def test_bad_interfaces_are_one_error(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "interfaces.csv"
    path.write_text(f"exporter,ifindex,name,description,speed,boundary\n{line}\n")
    with pytest.raises(FlowscopeError, match=message):
        Interfaces.load(path)


def test_toml_rows_that_are_no_tables_are_one_error(tmp_path: Path) -> None:
    """``network = "x"`` where a list of tables belongs (found by fuzz/targets/networks.py: AttributeError)."""
    path = tmp_path / "networks.toml"
    path.write_text('network = "10.0.0.0/8"\n')
    with pytest.raises(FlowscopeError, match="expected a list of tables"):
        Networks.load(path)
