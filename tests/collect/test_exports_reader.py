"""``flowscope read CAPTURE --as-exports`` end to end: captures of export datagrams into the lake, then SQL."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from tests.conftest import shared_data

from flowscope.cli import main
from flowscope.query import open_lake


def run(lake: Path, *args: str) -> str:
    result = CliRunner().invoke(main, ["--lake", str(lake), *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_read_as_exports_into_the_lake(lake_dir: Path) -> None:
    akvorado = shared_data("netflow", "akvorado")
    order = ["options-template.pcap", "options-data.pcap", "template.pcap", "data.pcap", "nfv5.pcap"]
    run(lake_dir, "read", "--as-exports", *(str(akvorado / name) for name in order))
    with open_lake(lake_dir) as con:
        rows = con.execute(
            "SELECT type, count(*), sum(bytes), sum(scaled(bytes, sampling_rate)),"
            " count(*) FILTER (WHERE NOT sampling_known(sampling_rate))"
            " FROM flows GROUP BY 1 ORDER BY 1"
        ).fetchall()
    # v9: 4 flows sampled 1:30000 (options data); v5: 29 flows whose header does not say (rate unknown)
    assert rows == [("netflow_v5", 29, 88345, 88345, 29), ("netflow_v9", 4, 5848, 5848 * 30000, 0)]


def test_read_as_exports_with_sampling_config(lake_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "sampling.toml"
    config.write_text('[sampling.exporters."10.19.144.41"]\ndefault = 10\n')
    nfv5 = shared_data("netflow", "akvorado", "nfv5.pcap")
    run(lake_dir, "read", "--as-exports", "--sampling-config", str(config), str(nfv5))
    with open_lake(lake_dir) as con:
        assert con.execute("SELECT DISTINCT sampling_rate FROM flows").fetchall() == [(10,)]


def test_read_as_exports_mixed_with_sflow(lake_dir: Path) -> None:
    sflow = shared_data("sflow", "akvorado")
    captures = sorted(str(p) for p in sflow.glob("*.pcap"))
    captures.append(str(shared_data("netflow", "scapy", "netflowv9.pcap")))
    run(lake_dir, "read", "--as-exports", *captures)
    with open_lake(lake_dir) as con:
        types = dict(con.execute("SELECT type, count(*) FROM flows GROUP BY 1").fetchall())
    assert types["netflow_v9"] == 24 and types["sflow_v5"] > 0


def test_read_as_exports_with_inner_tunnels(lake_dir: Path) -> None:
    akvorado = shared_data("netflow", "akvorado")
    names = ("ipfix-srv6-template.pcap", "ipfix-srv6-data.pcap")
    run(lake_dir, "read", "--as-exports", "--tunnels", "inner", *(str(akvorado / n) for n in names))
    with open_lake(lake_dir) as con:
        assert con.execute("SELECT ip_text(src_addr), ip_text(dst_addr), proto FROM flows").fetchall() == [
            ("8.8.8.8", "213.36.140.100", 1)
        ]
