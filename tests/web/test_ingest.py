"""``POST /api/ingest/{format}``: a posted flow file lands in the lake as ``flowscope read FILE`` puts it there,
once (the ingest ledger), within the size limit, and only when the server was started with --ingest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from tests.collect.test_exports_reader import export_capture
from tests.collect.test_netflow_protocol import SIMPLE, ipfix, set_, simple_record, template

from flowscope.cli import main
from flowscope.lake.layout import Lake
from flowscope.query import open_lake
from flowscope.web.app import create_app
from flowscope.web.queries import LakeQueries

CSV = Path(__file__).parents[1] / "csv" / "data" / "unicauca11_example.csv"
CONTENT = "SELECT * EXCLUDE (time_received) FROM flows ORDER BY ALL"


def client(lake: Path, max_bytes: int | None = 1 << 20) -> TestClient:
    lake.mkdir(exist_ok=True)
    return TestClient(create_app(LakeQueries(Lake.at(lake)), ingest_max_bytes=max_bytes))


def stored(lake: Path, sql: str = CONTENT) -> list[tuple]:
    with open_lake(lake) as con:
        return con.execute(sql).fetchall()


@pytest.mark.parametrize("reduce", [None, "pairs"])
def test_a_posted_csv_is_stored_as_read_stores_it(tmp_path: Path, reduce: str | None) -> None:
    posted, read = tmp_path / "posted", tmp_path / "read"
    answer = client(posted).post(
        "/api/ingest/csv", content=CSV.read_bytes(), params={"reduce": reduce} if reduce else {}
    )
    assert answer.status_code == 200, answer.text
    args = ["--lake", str(read), "read", str(CSV), *(["--reduce", reduce] if reduce else [])]
    assert CliRunner().invoke(main, args, catch_exceptions=False).exit_code == 0
    assert answer.json()["rows"] == len(stored(read)) > 0
    assert stored(posted) == stored(read)


def test_the_same_body_twice_is_stored_once(tmp_path: Path) -> None:
    api = client(tmp_path / "lake")
    first = api.post("/api/ingest/auto", content=CSV.read_bytes()).json()
    again = api.post("/api/ingest/auto", content=CSV.read_bytes()).json()
    assert first["rows"] > 0 and again["rows"] == 0 and again["notes"]
    assert stored(tmp_path / "lake", "SELECT count(*) FROM flows") == [(first["rows"],)]


def test_limits_and_refusals(tmp_path: Path) -> None:
    small = client(tmp_path / "lake", max_bytes=100)
    assert small.post("/api/ingest/csv", content=CSV.read_bytes()).status_code == 413
    assert small.post("/api/ingest/csv", content=b"").status_code == 400
    assert small.post("/api/ingest/nope", content=b"a,b\n").status_code == 400
    assert small.post("/api/ingest/csv", params={"reduce": "/etc/passwd"}, content=b"a,b\n").status_code == 400
    off = client(tmp_path / "lake", max_bytes=None)  # without --ingest there is no such route
    assert off.post("/api/ingest/csv", content=b"a\n").status_code in (404, 405)
    assert not list((tmp_path / "lake").rglob("*.parquet"))


def test_a_refused_body_is_named_as_the_body_not_the_servers_temporary_file(tmp_path: Path) -> None:
    answer = client(tmp_path / "lake").post("/api/ingest/nfdump", content=b"not an nfdump file at all")
    assert answer.status_code == 400
    assert answer.json()["detail"].startswith("the body: not an nfdump file")


@pytest.mark.parametrize("input_format", ["jsonl", "goflow2-json", "auto"])
def test_posted_json_lines_are_stored_as_read_stores_them(tmp_path: Path, input_format: str) -> None:
    """GoFlow2's -format=json lines (and flowscope's own JSON lines) posted, as ``read FILE`` stores them."""
    body = tmp_path / "goflow2.json"
    line = (
        '{"type":"IPFIX","time_received_ns":1700000000000000000,"time_flow_start_ns":1699999990000000000,'
        '"sampler_address":"192.0.2.1","src_addr":"10.0.0.%d","dst_addr":"2001:db8::1","etype":"IPv4",'
        '"proto":"TCP","src_port":443,"dst_port":%d,"bytes":%d,"packets":1,"bgp_communities":[]}\n'
    )
    body.write_text("".join(line % (i, 1000 + i, 100 * i) for i in range(1, 50)))
    answer = client(tmp_path / "posted").post(f"/api/ingest/{input_format}", content=body.read_bytes())
    assert answer.status_code == 200, answer.text
    assert CliRunner().invoke(main, ["--lake", str(tmp_path / "read"), "read", str(body)]).exit_code == 0
    assert answer.json()["rows"] == 49
    assert stored(tmp_path / "posted") == stored(tmp_path / "read")


def test_posted_goflow2_messages_are_stored_as_read_stores_them(tmp_path: Path) -> None:
    """GoFlow2 ``bin`` bodies (length-delimited FlowMessages, here with the file transport's newline after each)."""
    from tests.helpers import flows

    from flowscope.kafka import goflow2

    table = flows(200)
    received = pa.array(np.full(200, 1_700_000_000_000_000_000), pa.timestamp("ns", "UTC"))  # GoFlow2 always sets it
    table = table.set_column(table.schema.get_field_index("time_received"), "time_received", received)
    data, ends = goflow2.encode(table)
    starts = np.r_[0, ends[:-1]]
    raw = data.tobytes()
    body = tmp_path / "flows.bin"
    body.write_bytes(b"".join(raw[a:b] + b"\n" for a, b in zip(starts.tolist(), ends.tolist(), strict=True)))
    for input_format in ("goflow2", "auto"):
        lake = tmp_path / f"posted-{input_format}"
        answer = client(lake).post(f"/api/ingest/{input_format}", content=body.read_bytes())
        assert answer.status_code == 200, answer.text
        assert answer.json()["rows"] == 200
    assert CliRunner().invoke(main, ["--lake", str(tmp_path / "read"), "read", str(body)]).exit_code == 0
    assert stored(tmp_path / "posted-goflow2") == stored(tmp_path / "read") == stored(tmp_path / "posted-auto")


def test_the_servers_transforms_apply_to_what_it_ingests(tmp_path: Path) -> None:
    """``serve --ingest --anonymize KEY`` stores what ``read --anonymize KEY`` stores (built once, per server)."""
    from flowscope.transforms.anonymize import Anonymizer

    key = tmp_path / "key.hex"
    key.write_text(bytes(range(32)).hex())
    (tmp_path / "posted").mkdir()
    app = create_app(
        LakeQueries(Lake.at(tmp_path / "posted")),
        ingest_max_bytes=1 << 20,
        ingest_transforms=[Anonymizer(bytes(range(32)))],
    )
    assert TestClient(app).post("/api/ingest/csv", content=CSV.read_bytes()).status_code == 200
    args = ["--lake", str(tmp_path / "read"), "read", str(CSV), "--anonymize", str(key)]
    assert CliRunner().invoke(main, args).exit_code == 0
    assert stored(tmp_path / "posted") == stored(tmp_path / "read")
    plain = ["--lake", str(tmp_path / "plain"), "read", str(CSV)]
    assert CliRunner().invoke(main, plain).exit_code == 0
    assert stored(tmp_path / "posted") != stored(tmp_path / "plain")
    refused = CliRunner().invoke(main, ["--lake", str(tmp_path / "read"), "serve", "--anonymize", str(key)])
    assert refused.exit_code == 2 and "add --ingest" in refused.output


def test_posted_exports_leave_their_exporters_health(tmp_path: Path) -> None:
    """A capture of export datagrams posted as ``exports`` is stored as ``read --as-exports`` stores it, and the
    exporters page (``/api/exporters``) then shows those exporters, as after the read."""
    records = [simple_record("10.0.0.1", "10.0.0.2", 100 + i, 1) for i in range(3)]
    capture = export_capture(
        tmp_path / "exports.pcap", ("192.0.2.1", 4739, ipfix(template(256, *SIMPLE), set_(256, b"".join(records))))
    )
    api = client(tmp_path / "lake")
    answer = api.post("/api/ingest/exports", content=capture.read_bytes())
    assert answer.status_code == 200, answer.text
    assert answer.json()["rows"] == 3
    exporters = api.get("/api/exporters").json()["exporters"]
    assert {(e["exporter"], e["flows"]) for e in exporters} == {("192.0.2.1", 3)}
