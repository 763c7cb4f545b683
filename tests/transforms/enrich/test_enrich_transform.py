"""The enrichment transform: columns, AS filling, configuration errors, reloading, ``read --enrich``."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from click.testing import CliRunner
from tests.conftest import shared_data

from flowscope.addresses import parse_text
from flowscope.cli import main
from flowscope.errors import FlowscopeError
from flowscope.schema import ENRICHMENT_COLUMNS, FLOW_COLUMNS, conform
from flowscope.transforms.enrich import EnrichConfig, Enricher


def _flows() -> pa.Table:
    return conform(
        pa.table(
            {
                "src_addr": parse_text(pa.array(["1.0.0.1", "2.125.160.217", "1.128.0.1", "2001:db8::1", None])),
                "dst_addr": parse_text(pa.array(["1.0.0.5", "8.8.8.8", "1.0.0.5", "1.0.0.5", "1.0.0.5"])),
                "src_as": pa.array([0, 0, 65000, None, 0], pa.uint32()),
                "sampler_address": parse_text(pa.array(["192.0.2.1"] * 4 + ["192.0.2.9"])),
                "in_if": pa.array([3, 4, 3, None, 3], pa.uint32()),
                "bytes": pa.array([1, 2, 3, 4, 5], pa.uint64()),
            }
        )
    )


def _config(tmp_path: Path, **geoip: object) -> Path:
    data = shared_data("geoip", "maxmind")
    (tmp_path / "networks.csv").write_text("cidr,name,site\n1.0.0.0/8,one,paris\n1.0.0.0/24,google,\n::/0,any6,\n")
    (tmp_path / "interfaces.csv").write_text("exporter,ifindex,name,boundary\n192.0.2.1,3,xe-0/0/3,external\n")
    extra = "".join(f"{key} = {str(value).lower()}\n" for key, value in geoip.items())
    path = tmp_path / "enrich.toml"
    path.write_text(
        f'[geoip]\nasn = "{data}/GeoLite2-ASN-Test.mmdb"\ncountry = "{data}/GeoIP2-Country-Test.mmdb"\n{extra}'
        '[networks]\nfile = "networks.csv"\n[interfaces]\nfile = "interfaces.csv"\n'
        '[exporters."192.0.2.1"]\nname = "edge-1"\ngroup = "paris"\n'
    )
    return path


def test_enrichment_columns(tmp_path: Path) -> None:
    out = Enricher.from_file(_config(tmp_path))(_flows())
    assert out.column_names[: len(FLOW_COLUMNS)] == list(conform(_flows()).column_names)
    added = set(out.column_names) - FLOW_COLUMNS
    assert added <= ENRICHMENT_COLUMNS
    rows = out.to_pylist()
    # filled only where the exporter sent 0 or nothing; an AS the exporter sent is kept, with no database name
    assert [r["src_as"] for r in rows] == [15169, 0, 65000, None, 0]
    assert [r["src_as_name"] for r in rows] == ["Google Inc.", None, None, None, None]
    assert [r["dst_as"] for r in rows] == [15169, None, 15169, 15169, 15169]
    assert [r["src_country"] for r in rows] == [None, "GB", None, None, None]
    assert [r["src_net_name"] for r in rows] == ["google", None, "one", "any6", None]
    assert [r["src_net_site"] for r in rows] == [None, None, "paris", None, None]
    assert [r["in_if_name"] for r in rows] == ["xe-0/0/3", None, "xe-0/0/3", None, None]
    assert [r["in_if_boundary"] for r in rows] == ["external", None, "external", None, None]
    assert [r["exporter_name"] for r in rows] == ["edge-1"] * 4 + [None]
    assert [r["exporter_group"] for r in rows] == ["paris"] * 4 + [None]


def test_overwrite_as(tmp_path: Path) -> None:
    out = Enricher.from_file(_config(tmp_path, overwrite_as=True))(_flows())
    assert out.column("src_as").to_pylist() == [15169, 0, 1221, None, 0]
    assert out.column("src_as_name").to_pylist() == ["Google Inc.", None, "Telstra Pty Ltd", None, None]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[geoip]\nasm = 'x.mmdb'\n", "unknown key 'asm' in \\[geoip\\]"),
        ("[geo]\n", "unknown section \\[geo\\]"),
        ("", "configures no enrichment"),
        ("[exporters.'nowhere']\nname = 'x'\n", "not an IP address"),
        ("[geoip]\nasn = 'missing.mmdb'\n", "cannot read MMDB database"),
        ("[geoip]\nasn = '{data}/GeoIP2-Country-Test.mmdb'\n", "holds no asn"),
        ("[geoip]\ncountry = '{data}/MaxMind-DB-test-broken-pointers-24.mmdb'\n", "broken MMDB database"),
        ("[networks]\nfile = 'missing.csv'\n", "cannot read networks file"),
        ("[geoip\n", "enrichment config"),
    ],
)
def test_configuration_errors_are_one_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "enrich.toml"
    path.write_text(text.replace("{data}", str(shared_data("geoip", "maxmind"))))
    with pytest.raises(FlowscopeError, match=message) as error:
        Enricher.from_file(path)
    assert "\n" not in str(error.value)


def test_a_changed_database_is_reloaded_and_a_broken_one_ignored(tmp_path: Path) -> None:
    data = shared_data("geoip", "maxmind")
    database = tmp_path / "asn.mmdb"
    shutil.copy(data / "GeoLite2-ASN-Test.mmdb", database)
    enricher = Enricher(EnrichConfig(asn=database), reload_seconds=0)
    assert enricher(_flows()).column("src_as").to_pylist()[0] == 15169
    shutil.copy(data / "GeoIP2-ISP-Test.mmdb", database)  # another AS database: 1.0.0.0/24 is not in it
    os.utime(database, ns=(1, 1))
    assert enricher(_flows()).column("src_as").to_pylist()[0] == 0
    shutil.copy(data / "MaxMind-DB-test-broken-pointers-24.mmdb", database)
    assert enricher(_flows()).column("src_as").to_pylist()[0] == 0  # the loaded one is kept
    shutil.copy(data / "GeoLite2-Country-Test.mmdb", database)  # no AS numbers: refused too
    assert enricher(_flows()).column("src_as").to_pylist()[:3] == [0, 0, 65000]
    shutil.copy(data / "GeoLite2-ASN-Test.mmdb", database)
    assert enricher(_flows()).column("src_as").to_pylist()[0] == 15169


def test_read_enrich_into_the_lake(tmp_path: Path) -> None:
    flows = tmp_path / "flows.csv"
    flows.write_text(
        "Source.IP,Source.Port,Destination.IP,Destination.Port,Protocol,Timestamp,Flow.Duration,Total.Fwd.Packets\n"
        "1.0.0.1,1234,2.125.160.217,443,6,26/04/201711:11:17,45523,22\n"
    )
    plain = tmp_path / "plain.csv"
    plain.write_text(flows.read_text().replace("1234", "1235"))
    lake = tmp_path / "lake"
    runner = CliRunner()
    result = runner.invoke(main, ["--lake", str(lake), "read", str(flows), "--enrich", str(_config(tmp_path))])
    assert result.exit_code == 0, result.output
    assert runner.invoke(main, ["--lake", str(lake), "read", str(plain)]).exit_code == 0
    rows = duckdb.sql(
        "SELECT src_port, src_as, src_as_name, dst_country, src_net_name"
        f" FROM read_parquet('{lake}/flows/**/*.parquet', union_by_name = true) ORDER BY src_port"
    ).fetchall()
    assert rows == [(1234, 15169, "Google Inc.", "GB", "google"), (1235, None, None, None, None)]


def test_read_with_a_broken_database_writes_nothing(tmp_path: Path) -> None:
    config = tmp_path / "enrich.toml"
    broken = shared_data("geoip", "maxmind", "MaxMind-DB-test-broken-search-tree-24.mmdb")
    config.write_text(f"[geoip]\nasn = '{broken}'\n")
    flows = tmp_path / "flows.csv"
    flows.write_text("Source.IP,Source.Port,Destination.IP,Destination.Port,Protocol,Timestamp\n"
                     "1.0.0.1,1,1.0.0.2,2,6,26/04/201711:11:17\n")  # fmt: skip
    result = CliRunner().invoke(main, ["--lake", str(tmp_path / "lake"), "read", str(flows), "--enrich", str(config)])
    assert result.exit_code == 2
    assert "broken MMDB database" in result.output
    assert not list((tmp_path / "lake").glob("flows/**/*.parquet"))


def test_enrich_command_re_enriches_stored_flows(tmp_path: Path) -> None:
    flows = tmp_path / "flows.csv"
    flows.write_text(
        "Source.IP,Source.Port,Destination.IP,Destination.Port,Protocol,Timestamp\n"
        "1.0.0.1,1234,2.125.160.217,443,6,26/04/201711:11:17\n"
    )
    lake = tmp_path / "lake"
    runner = CliRunner()
    assert runner.invoke(main, ["--lake", str(lake), "read", str(flows)]).exit_code == 0
    result = runner.invoke(main, ["--lake", str(lake), "enrich", "--enrich", str(_config(tmp_path))])
    assert result.exit_code == 0, result.output
    assert "re-enriched 1 flows in 1 partition(s)" in result.output
    rows = duckdb.sql(
        "SELECT src_as, src_as_name, dst_country, src_net_name"
        f" FROM read_parquet('{lake}/flows/**/*.parquet', union_by_name = true)"
    ).fetchall()
    assert rows == [(15169, "Google Inc.", "GB", "google")]
