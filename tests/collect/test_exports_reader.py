"""``flowscope read CAPTURE --as-exports`` end to end: captures of export datagrams into the lake, then SQL."""

from __future__ import annotations

import json
import struct
from collections import Counter
from pathlib import Path

import pyarrow as pa
from click.testing import CliRunner
from tests.capture.frame_builders import ether, ipv4, pcap_file, udp
from tests.collect.test_netflow_protocol import (
    SIMPLE,
    batch,
    ipfix,
    options_template,
    set_,
    simple_record,
    template,
)
from tests.collect.test_sflow import counter_datagram
from tests.conftest import shared_data

from flowscope import addresses
from flowscope.cli import main
from flowscope.collect.dispatch import decode_netflow
from flowscope.collect.exports import ExportCaptureSource
from flowscope.collect.server import lake_health
from flowscope.collect.state import NetflowState
from flowscope.lake.layout import Lake
from flowscope.pipeline import table_of
from flowscope.query import open_lake
from flowscope.schema import INTERFACE_COUNTERS, INTERFACE_COUNTERS_SCHEMA

CAPTURE_START_S = 1_700_000_000


def export_capture(path: Path, *datagrams: tuple[str, int, bytes]) -> Path:
    """A capture of export datagrams, (exporter, destination port, payload) each; packet i at start + i s."""
    frames = [ether(ipv4(udp(50000, port, payload), 17, sender, "192.0.2.100")) for sender, port, payload in datagrams]
    path.write_bytes(pcap_file(frames, start_s=CAPTURE_START_S))
    return path


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
    exporters = json.loads(run(lake_dir, "exporters", "--format", "json"))["exporters"]
    sampling = {(e["exporter"], s["source"], s["rate"], s["flows"]) for e in exporters for s in e["sampling"]}
    assert sampling == {(e["exporter"], "options", 30000, 4) for e in exporters if e["flows"] == 4} | {
        (e["exporter"], "unknown", None, 29) for e in exporters if e["flows"] == 29
    }
    assert "1:30,000 options (4)" in " ".join(run(lake_dir, "exporters").split())


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
    with open_lake(lake_dir) as con:
        rates = con.execute("SELECT sampling_rate, count(*) FROM flows WHERE type = 'sflow_v5' GROUP BY 1").fetchall()
    exporters = json.loads(run(lake_dir, "exporters", "--format", "json"))["exporters"]
    sflow_sampling = [s for e in exporters if e["protocol"] == "sflow" for s in e["sampling"]]
    by_rate: Counter[int] = Counter()
    for entry in sflow_sampling:
        by_rate[entry["rate"]] += entry["flows"]
    assert by_rate == dict(rates)
    assert {s["source"] for s in sflow_sampling} == {"record"}


def test_read_as_exports_with_inner_tunnels(lake_dir: Path) -> None:
    akvorado = shared_data("netflow", "akvorado")
    names = ("ipfix-srv6-template.pcap", "ipfix-srv6-data.pcap")
    run(lake_dir, "read", "--as-exports", "--tunnels", "inner", *(str(akvorado / n) for n in names))
    with open_lake(lake_dir) as con:
        assert con.execute("SELECT ip_text(src_addr), ip_text(dst_addr), proto FROM flows").fetchall() == [
            ("8.8.8.8", "213.36.140.100", 1)
        ]


def test_sflow_counter_samples_come_out_as_interface_counter_batches(tmp_path: Path) -> None:
    """Counter samples are yielded (tagged for ``interface_counters``, the collector's columns), not dropped."""
    flows = ipfix(template(256, *SIMPLE), set_(256, simple_record("10.0.0.1", "10.0.0.2", 100, 1)))
    capture = export_capture(
        tmp_path / "exports.pcap",
        ("192.0.2.9", 6343, counter_datagram(sequence=7)),
        ("192.0.2.1", 4739, flows),
        ("192.0.2.9", 6343, counter_datagram(sequence=8)),
    )
    source = ExportCaptureSource([capture])
    by_table: dict[str, list[pa.Table]] = {}
    for table in source:
        by_table.setdefault(table_of(table), []).append(table)
    assert sorted(by_table) == ["flows", INTERFACE_COUNTERS]
    assert sum(t.num_rows for t in by_table["flows"]) == 1
    counters = pa.concat_tables(by_table[INTERFACE_COUNTERS])
    assert counters.schema.equals(INTERFACE_COUNTERS_SCHEMA)
    assert counters.column("in_octets").to_pylist() == [123_456_789_012] * 2
    assert addresses.format_text(counters.column("sampler_address")).to_pylist() == ["192.0.2.9"] * 2
    received = counters.column("time_received").cast(pa.int64()).to_pylist()
    assert received == [CAPTURE_START_S * 10**9 + 250_000_000, (CAPTURE_START_S + 2) * 10**9 + 250_000_000]
    assert not source.skips.counts


def test_exports_read_from_a_capture_leave_the_collectors_health_in_the_lake(tmp_path: Path, lake_dir: Path) -> None:
    """``save_health`` after reading: ``flowscope exporters`` and ``flowscope templates`` show the exports of
    the capture as they show a collector run's (datagrams, flows without options data, sequence loss, decode
    errors, templates, learnt sampling rates), and templates a collector saved before are kept."""
    decode_netflow(batch(ipfix(template(300, *SIMPLE)), exporter="192.0.2.50"), NetflowState.open(lake_dir))
    records = [simple_record("10.0.0.1", "10.0.0.2", 100 + i, 1) for i in range(3)]
    datagrams = [("192.0.2.1", 4739, ipfix(options_template(400, [(10, 4)], [(34, 4)]), template(256, *SIMPLE)))]
    sequence = 0
    for index in range(6):
        message = ipfix(set_(400, struct.pack(">II", 3, 64)), set_(256, b"".join(records)), sequence=sequence)
        sequence += 4  # an options record and three flows
        if index != 3:  # the exporter sent it, the capture lost it
            datagrams.append(("192.0.2.1", 4739, message))
    datagrams += [("192.0.2.7", 2055, b"\x00\x07" + bytes(30)), ("192.0.2.9", 6343, counter_datagram())]
    source = ExportCaptureSource([export_capture(tmp_path / "exports.pcap", *datagrams)])
    flows = sum(table.num_rows for table in source if table_of(table) == "flows")
    assert flows == 15
    source.save_health(lake_dir)

    health = lake_health(Lake.at(lake_dir))
    by_exporter = {(e["protocol"], e["exporter"]): e for e in health["exporters"]}
    ipfix_exporter = by_exporter[("netflow", "192.0.2.1")]
    assert (ipfix_exporter["datagrams"], ipfix_exporter["flows"]) == (6, 15)
    assert ipfix_exporter["lost"] == {"flows": 4}  # the lost datagram's four data records
    assert by_exporter[("netflow", "192.0.2.7")]["errors"] == {"unknown NetFlow version 7": 1}
    assert by_exporter[("sflow", "192.0.2.9")]["datagrams"] == 1
    assert health["rows_written"] == {"flows": 15, INTERFACE_COUNTERS: 1}
    assert health["templates"] == {"known": 2, "held_sets": 0}

    saved = NetflowState.open(lake_dir)
    known = {(addresses.format_one(k[0]), k[3]) for k in saved.templates.templates}
    assert known == {("192.0.2.1", 256), ("192.0.2.1", 400), ("192.0.2.50", 300)}
    assert saved.sampling.rates[((addresses.parse_one("192.0.2.1"), 10, 1), None)] == 64

    exporters = json.loads(run(lake_dir, "exporters", "--format", "json"))
    assert {(e["protocol"], e["exporter"]) for e in exporters["exporters"]} == set(by_exporter)
    assert "192.0.2.1" in run(lake_dir, "exporters")
    templates = json.loads(run(lake_dir, "templates", "--format", "json"))
    assert {(t["exporter"], t["template_id"], t["kind"]) for t in templates} == {
        ("192.0.2.1", 256, "data"),
        ("192.0.2.1", 400, "options"),
        ("192.0.2.50", 300, "data"),
    }


def test_exporters_after_read_as_exports_through_the_command(tmp_path: Path, lake_dir: Path) -> None:
    """``read --as-exports`` into a lake leaves its exporters' health; written to a file only, it leaves none."""
    records = [simple_record("10.0.0.1", "10.0.0.2", 100 + i, 1) for i in range(2)]
    capture = export_capture(
        tmp_path / "exports.pcap",
        ("192.0.2.1", 4739, ipfix(template(256, *SIMPLE), set_(256, b"".join(records)))),
        ("192.0.2.9", 6343, counter_datagram()),
    )
    run(lake_dir, "read", "--as-exports", str(capture), "-o", str(tmp_path / "flows.parquet"))
    assert not lake_dir.exists()
    said = " ".join(run(lake_dir, "read", "--as-exports", str(capture)).split())
    assert "2 flows, 1 interface_counters rows from 1 input(s)" in said
    exporters = json.loads(run(lake_dir, "exporters", "--format", "json"))
    flows_by_exporter = {e["exporter"]: e["flows"] for e in exporters["exporters"]}
    assert flows_by_exporter == {"192.0.2.1": 2, "192.0.2.9": 0}
    with open_lake(lake_dir) as con:
        assert con.execute(f"SELECT count(*) FROM {INTERFACE_COUNTERS}").fetchone() == (1,)
