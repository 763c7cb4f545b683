"""Crypto-PAn: the reference implementation's sample key and trace, prefix preservation, key files, the CLI."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from tests.conftest import shared_data

from flowscope.addresses import format_text, parse_text
from flowscope.cli import main
from flowscope.errors import FlowscopeError
from flowscope.schema import conform
from flowscope.transforms.anonymize import Anonymizer, CryptoPAn, read_key

# The sample key of the Crypto-PAn reference distribution (sample.cpp).
REFERENCE_KEY = bytes([
    21, 34, 23, 141, 51, 164, 207, 128, 19, 10, 91, 22, 73, 144, 125, 16,
    216, 152, 143, 131, 121, 121, 101, 39, 98, 87, 76, 45, 42, 132, 34, 2,
])  # fmt: skip
# sample_trace_raw.dat -> sample_trace_sanitized.dat of the reference distribution, one pair per address.
REFERENCE_TRACE = """
128.11.68.132 135.242.180.132   129.118.74.4 134.136.186.123    130.132.252.244 133.68.164.234
141.223.7.43 141.167.8.160      141.233.145.108 141.129.237.235 152.163.225.39 151.140.114.167
156.29.3.236 147.225.12.42      165.247.96.84 162.9.99.234      166.107.77.190 160.132.178.185
192.102.249.13 252.138.62.131   192.215.32.125 252.43.47.189    192.233.80.103 252.25.108.8
192.41.57.43 252.222.221.184    193.150.244.223 253.169.52.216  195.205.63.100 255.186.223.5
198.200.171.101 249.199.68.213  198.26.132.101 249.36.123.202   198.36.213.5 249.7.21.132
198.51.77.238 249.18.186.254    199.217.79.101 248.38.184.213   202.49.198.20 245.206.7.234
203.12.160.252 244.248.163.4    204.184.162.189 243.192.77.90   204.202.136.230 243.178.4.198
204.29.20.4 243.33.20.123       205.178.38.67 242.108.198.51    205.188.147.153 242.96.16.101
205.188.248.25 242.96.88.27     205.245.121.43 242.21.121.163   207.105.49.5 241.118.205.138
207.135.65.238 241.202.129.222  207.155.9.214 241.220.250.22    207.188.7.45 241.255.249.220
207.25.71.27 241.33.119.156     207.33.151.131 241.1.233.131    208.147.89.59 227.237.98.191
208.234.120.210 227.154.67.17   208.28.185.184 227.39.94.90     208.52.56.122 227.8.63.165
209.12.231.7 226.243.167.8      209.238.72.3 226.6.119.243      209.246.74.109 226.22.124.76
209.68.60.238 226.184.220.233   209.85.249.6 226.170.70.6       212.120.124.31 228.135.163.231
212.146.8.236 228.19.4.234      212.186.227.154 228.59.98.98    212.204.172.118 228.71.195.169
212.206.130.201 228.69.242.193  216.148.237.145 235.84.194.111  216.157.30.252 235.89.31.26
216.184.159.48 235.96.225.78    216.227.10.221 235.28.253.36    216.254.18.172 235.7.16.162
216.32.132.250 235.192.139.38   216.35.217.178 235.195.157.81   24.0.250.221 100.15.198.226
24.13.62.231 100.2.192.247      24.14.213.138 100.1.42.141      24.5.0.80 100.9.15.210
24.7.198.88 100.10.6.25         24.94.26.44 100.88.228.35       38.15.67.68 64.3.66.187
4.3.88.225 124.60.155.63        63.14.55.111 95.9.215.7         63.195.241.44 95.179.238.44
63.97.7.140 95.97.9.123         64.14.118.196 0.255.183.58      64.34.154.117 0.221.154.117
64.39.15.238 0.219.7.41         10.185.25.118 117.161.29.118
"""
# IPv6 (128 positions over the whole block), as the Go implementation (Yawning/cryptopan) answers them.
IPV6_VECTORS = [
    ("::1", "78ff:f001:9fc0:20df:8380:b1f1:704:ed"),
    ("::2", "78ff:f001:9fc0:20df:8380:b1f1:704:ef"),
    ("::ffff", "78ff:f001:9fc0:20df:8380:b1f1:704:f838"),
    ("2001:db8::1", "4401:2bc:603f:d91d:27f:ff8e:e6f1:dc1e"),
    ("2001:db8::2", "4401:2bc:603f:d91d:27f:ff8e:e6f1:dc1c"),
]


def _pairs() -> list[tuple[str, str]]:
    words = REFERENCE_TRACE.split()
    return list(zip(words[::2], words[1::2], strict=True))


def _anonymize(addresses: list[str | None], key: bytes = REFERENCE_KEY) -> list[str | None]:
    return format_text(Anonymizer(key).column(parse_text(pa.array(addresses, pa.string())))).to_pylist()


def test_reference_trace() -> None:
    pairs = _pairs()
    assert len(pairs) == 71
    assert _anonymize([original for original, _ in pairs]) == [anonymised for _, anonymised in pairs]


def test_ipv6_vectors() -> None:
    expected = [str(ipaddress.ip_address(anonymised)) for _, anonymised in IPV6_VECTORS]
    assert _anonymize([original for original, _ in IPV6_VECTORS]) == expected


def _common_prefix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Leading equal bits of two (n, k) byte matrices."""
    differ = np.unpackbits(a ^ b, axis=1)
    return np.where(differ.any(axis=1), differ.argmax(axis=1), differ.shape[1])


@pytest.mark.parametrize("bits", [32, 128])
def test_prefixes_are_preserved_and_the_mapping_is_one_to_one(bits: int) -> None:
    rng = np.random.default_rng(bits)
    base = rng.integers(0, 256, (2000, bits // 8), dtype=np.uint8)
    flip = rng.integers(0, bits, 2000)  # the first bit where each pair differs; random bits after it
    after = np.arange(bits)[None, :] > flip[:, None]
    near_bits = np.where(after, rng.integers(0, 2, (2000, bits)), np.unpackbits(base, axis=1)).astype(np.uint8)
    near_bits[np.arange(2000), flip] ^= 1
    near = np.packbits(near_bits, axis=1)
    cryptopan = CryptoPAn(REFERENCE_KEY)
    both = cryptopan.anonymize(np.concatenate([base, near]), bits)
    assert (_common_prefix(both[:2000], both[2000:]) == _common_prefix(base, near)).all()
    assert (_common_prefix(base, near) == flip).all()
    assert len(np.unique(both, axis=0)) == len(np.unique(np.concatenate([base, near]), axis=0))


def test_columns_keep_nulls_and_families_and_one_key_is_one_mapping() -> None:
    addresses = ["10.0.0.1", None, "2001:db8::1", "10.0.0.1", "10.0.0.2"]
    first, again = _anonymize(addresses), _anonymize(list(reversed(addresses)))
    assert first == list(reversed(again))
    assert first[1] is None and first[0] == first[3] and "." in first[4] and ":" in first[2]
    assert first[0].rsplit(".", 1)[0] == first[4].rsplit(".", 1)[0]  # same /24 (they share 30 bits)
    assert _anonymize(addresses, bytes(range(32))) != first


def test_the_transform_anonymises_every_address_column() -> None:
    flows = conform(
        pa.table(
            {
                "src_addr": parse_text(pa.array(["128.11.68.132"])),
                "dst_addr": parse_text(pa.array(["10.185.25.118"])),
                "sampler_address": parse_text(pa.array(["4.3.88.225"])),
                "next_hop": parse_text(pa.array([None], pa.string())),
                "bytes": pa.array([5], pa.uint64()),
            }
        )
    )
    out = Anonymizer(REFERENCE_KEY)(flows)
    assert format_text(out.column("src_addr")).to_pylist() == ["135.242.180.132"]
    assert format_text(out.column("dst_addr")).to_pylist() == ["117.161.29.118"]
    assert format_text(out.column("sampler_address")).to_pylist() == ["124.60.155.63"]
    assert out.column("next_hop").null_count == 1 and out.column("bytes").to_pylist() == [5]


def test_key_files(tmp_path: Path) -> None:
    raw, text = tmp_path / "raw.key", tmp_path / "hex.key"
    raw.write_bytes(REFERENCE_KEY)
    text.write_text(REFERENCE_KEY.hex().upper() + "\n")
    assert read_key(raw) == read_key(text) == REFERENCE_KEY
    for content in (b"short", b"z" * 64, bytes(33)):
        (tmp_path / "bad.key").write_bytes(content)
        with pytest.raises(FlowscopeError, match="must hold 32 bytes"):
            read_key(tmp_path / "bad.key")
    with pytest.raises(FlowscopeError, match="cannot read anonymisation key"):
        read_key(tmp_path / "missing.key")


def test_read_anonymize_enriches_first(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text(REFERENCE_KEY.hex())
    config = tmp_path / "enrich.toml"
    config.write_text(f"[geoip]\nasn = '{shared_data('geoip', 'maxmind', 'GeoLite2-ASN-Test.mmdb')}'\n")
    flows = tmp_path / "flows.csv"
    flows.write_text("Source.IP,Source.Port,Destination.IP,Destination.Port,Protocol,Timestamp\n"
                     "1.0.0.1,1,128.11.68.132,2,6,26/04/201711:11:17\n")  # fmt: skip
    out = tmp_path / "out.csv"
    args = ["--lake", str(tmp_path / "lake"), "read", str(flows), "--enrich", str(config), "--anonymize", str(key)]
    result = CliRunner().invoke(main, [*args, "-o", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert "135.242.180.132" in text and "128.11.68.132" not in text and "1.0.0.1" not in text
    assert "Google Inc." in text  # looked up before the addresses were anonymised


def test_query_and_top_anonymize_their_results(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_bytes(REFERENCE_KEY)
    flows = tmp_path / "flows.csv"
    flows.write_text("Source.IP,Source.Port,Destination.IP,Destination.Port,Protocol,Timestamp\n"
                     "128.11.68.132,1,10.185.25.118,2,6,26/04/201711:11:17\n")  # fmt: skip
    lake = ["--lake", str(tmp_path / "lake")]
    runner = CliRunner()
    assert runner.invoke(main, [*lake, "read", str(flows)]).exit_code == 0
    sql = "SELECT src_addr, ip_text(dst_addr) AS dst, 'not an address' AS note, proto FROM flows"
    result = runner.invoke(main, [*lake, "query", sql, "--format", "csv", "--anonymize", str(key)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1] == '"135.242.180.132","117.161.29.118","not an address",6'
    out = tmp_path / "out.parquet"
    assert runner.invoke(main, [*lake, "query", sql, "-o", str(out), "--anonymize", str(key)]).exit_code == 0
    assert pq.read_table(out).column("dst").to_pylist() == ["117.161.29.118"]
    result = runner.invoke(main, [*lake, "top", "--by", "src", "--format", "csv", "--anonymize", str(key)])
    assert result.exit_code == 0 and "135.242.180.132" in result.output and "128.11.68.132" not in result.output


def test_streams_enrich_then_anonymize(tmp_path: Path) -> None:
    from flowscope.cli.options import transforms_from
    from flowscope.transforms.enrich import Enricher

    key = tmp_path / "key"
    key.write_bytes(REFERENCE_KEY)
    config = tmp_path / "enrich.toml"
    config.write_text('[exporters."192.0.2.1"]\nname = "x"\n')
    transforms = transforms_from({"enrich": str(config), "anonymize": str(key)})
    assert [type(t) for t in transforms] == [Enricher, Anonymizer]
    assert transforms_from({}) == []
