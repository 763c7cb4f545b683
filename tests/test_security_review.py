"""The security review of docs/RELIABILITY.md ("Security review"): one test per check.

Listeners bind where told (loopback by default for the console and metrics), no shell sees a user's string,
user text reaches SQL only as parameters (the filter language) or quoted catalogue / destination names, no
path is taken from a request, and decompression is bounded (tests/nfdump/test_nfdump_bombs.py,
tests/capture/test_capture_bombs.py, tests/kafka/test_formats.py).
"""

from __future__ import annotations

import ast
import socket
import sqlite3
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from flowscope.capture.live import Rotation, tcpdump_command
from flowscope.cli import main
from flowscope.cli.serve_cmd import serve
from flowscope.collect.metrics import MetricsServer, parse_address
from flowscope.collect.receive import Listen, open_socket
from flowscope.db.clickhouse import ClickHouseURL
from flowscope.db.elasticsearch import bulk_lines
from flowscope.errors import FlowscopeError
from flowscope.lake import LakeWriter
from flowscope.lake.layout import Lake
from flowscope.query import open_lake
from flowscope.web.app import create_app
from flowscope.web.queries import LakeQueries
from helpers import HOUR_NS, flows

SRC = Path(__file__).resolve().parents[1] / "src" / "flowscope"
DAY = {"since": "2024-05-01T00:00:00Z", "until": "2024-05-02T00:00:00Z"}
INJECTIONS = ("x'; DROP TABLE flows; --", 'x"; DROP TABLE flows; --', "1) OR (1=1", "flows; COPY flows TO '/tmp/x'")


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("security") / "lake"
    with LakeWriter(root) as writer:
        writer.write(flows(240, spacing_ns=HOUR_NS // 10))
    return root


def _free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _stored(lake: Path) -> int:
    with open_lake(lake) as con:
        return con.execute("SELECT count(*) FROM flows").fetchone()[0]


# -- listeners -------------------------------------------------------------------------------------------------


def test_console_binds_loopback_by_default_and_elsewhere_only_with_a_token(lake: Path) -> None:
    listen = next(p for p in serve.params if p.name == "listen")
    assert listen.default == "127.0.0.1:8080"
    args = ["--lake", str(lake), "serve", "--listen", "0.0.0.0:1"]
    refused = CliRunner().invoke(main, args, env={"FLOWSCOPE_TOKEN": ""})
    assert refused.exit_code == 2 and "reachable from other machines" in refused.output


def test_metrics_bind_loopback_unless_told() -> None:
    assert parse_address(":9433") == ("127.0.0.1", 9433)
    assert parse_address("[::1]:9433") == ("::1", 9433)
    port = _free_port()
    server = MetricsServer(f":{port}", dict, lambda _snapshot: "up 1\n")  # collect --metrics, consume --metrics
    try:
        assert server.server.server_address[:2] == ("127.0.0.1", port)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            assert answer.read() == b"up 1\n"
    finally:
        server.close()


def test_collector_binds_exactly_where_told() -> None:
    listen = Listen.parse(f"netflow://127.0.0.1:{_free_port(socket.SOCK_DGRAM)}")
    sock = open_socket(listen, receive_buffer=1 << 16, reuse_port=False)
    try:
        assert sock.family == socket.AF_INET and sock.getsockname()[0] == "127.0.0.1"
    finally:
        sock.close()
    # a collector receives from routers: with the host left out it listens on every address, as documented
    assert Listen.parse("sflow://:6343").host == "0.0.0.0"


# -- no shell --------------------------------------------------------------------------------------------------


def test_no_shell_ever_runs_anything() -> None:
    """No ``shell=True``, ``os.system``, ``os.popen`` or string command anywhere in flowscope."""
    found = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call):
                continue
            name = ast.unparse(node.func)
            if name in ("os.system", "os.popen", "subprocess.getoutput", "subprocess.getstatusoutput"):
                found.append(f"{path}:{node.lineno} {name}")
            if any(k.arg == "shell" for k in node.keywords):
                found.append(f"{path}:{node.lineno} shell=")
            if name.startswith("subprocess.") and node.args and isinstance(node.args[0], ast.Constant | ast.JoinedStr):
                found.append(f"{path}:{node.lineno} a command string")
    assert found == []


def test_tcpdump_takes_hostile_strings_as_arguments_only(tmp_path: Path) -> None:
    """A filter starting with '-' was an option to tcpdump (glibc's getopt permutes): ``-z CMD`` runs CMD on every
    rotated file. It now follows ``--``; an interface name with a '/' would have put files outside the folder."""
    bpf = "-z /tmp/evil.sh"
    command = tcpdump_command("tcpdump", "eth0", tmp_path, Rotation(), bpf)
    assert command[-2:] == ["--", bpf] and all(isinstance(part, str) for part in command)
    for interface in ("../../etc", "a/b", "..", ""):
        with pytest.raises(FlowscopeError, match="no interface name"):
            tcpdump_command("tcpdump", interface, tmp_path, Rotation(), None)
    assert tcpdump_command("tcpdump", "-z", tmp_path, Rotation(), None)[1:3] == ["-i", "-z"]  # an option's value


# -- SQL -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("attempt", INJECTIONS)
def test_console_parameters_never_become_sql(lake: Path, attempt: str) -> None:
    client = TestClient(create_app(LakeQueries(Lake.at(lake))))
    probes = [
        ("/api/top", {"filter": attempt}), ("/api/top", {"filter": f"type = '{attempt}'"}),
        ("/api/top", {"by": attempt}), ("/api/top", {"metric": attempt}), ("/api/timeseries", {"by": attempt}),
        ("/api/timeseries", {"unit": attempt}), ("/api/sankey", {"by": f"proto,{attempt}"}),
        ("/api/flows", {"since": attempt}), ("/api/flows", {"until": attempt}),
    ]  # fmt: skip
    for path, params in probes:
        answer = client.get(path, params={**DAY, **params})
        assert answer.status_code in (200, 400, 422), (path, params, answer.text)
        if answer.status_code == 200:  # a string compared as a string: selects nothing
            assert answer.json()["rows"] == []
    assert _stored(lake) == 240


@pytest.mark.parametrize("attempt", INJECTIONS)
def test_cli_filter_and_times_never_become_sql(lake: Path, attempt: str) -> None:
    for args in (["--filter", attempt], ["--since", attempt], ["--until", attempt]):
        result = CliRunner().invoke(main, ["--lake", str(lake), "top", *args])
        assert result.exit_code == 2 and "rror:" in result.output and "Traceback" not in result.output
    assert _stored(lake) == 240


def test_a_materialized_table_name_is_a_name(lake: Path, tmp_path: Path) -> None:
    """``--table`` is quoted wherever it goes: an injection attempt becomes a table of that odd name."""
    database = tmp_path / "odd.db"
    table = 'pairs"; DROP TABLE flowscope_materialized; --'
    args = ["--lake", str(lake), "materialize", "pairs", "--to", f"sqlite:///{database}", "--table", table]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    with sqlite3.connect(database) as con:
        names = {row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {table, "flowscope_materialized"} <= names
        assert con.execute(f'SELECT count(*) FROM "{table.replace(chr(34), chr(34) * 2)}"').fetchone()[0] > 0


def test_an_elasticsearch_index_with_a_quote_stays_in_its_json() -> None:
    """Elasticsearch allows a quote in an index name; it went into the SQL text that builds the bulk body and
    ended it there. It is a parameter now."""
    table = flows(2)
    table = table.set_column(table.schema.get_field_index("time_received"), "time_received", table["time_flow_start"])
    lines = bulk_lines(table, "flows'); SELECT ('x")
    first = lines[0].as_py().splitlines()[0]
    assert first.startswith('{"index":{"_index":"flows\'); SELECT (\'x-2024.') and len(lines) == 2


@pytest.mark.parametrize("database", ["a%60b", "a%5C", "a/b"])
def test_clickhouse_database_names_cannot_leave_their_quotes(database: str) -> None:
    with pytest.raises(FlowscopeError, match="bad ClickHouse database name"):
        ClickHouseURL.parse(f"clickhouse://127.0.0.1:9000/{database}")


# -- paths -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/../../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/..%2f..%2fapp.py", "/static/../web/app.py"]
)
def test_static_files_stay_in_their_folder(lake: Path, path: str) -> None:
    answer = TestClient(create_app(LakeQueries(Lake.at(lake)))).get(path)
    assert answer.status_code == 404 and b"root:" not in answer.content and b"import" not in answer.content


@pytest.mark.parametrize("fmt", ["..%2f..%2fetc%2fpasswd", "../../x", "csv%00", "/etc/passwd"])
def test_ingest_takes_no_name_from_the_request(lake: Path, fmt: str) -> None:
    client = TestClient(create_app(LakeQueries(Lake.at(lake)), ingest_max_bytes=1 << 20))
    answer = client.post(f"/api/ingest/{fmt}", content=b"a,b\n1,2\n")
    assert answer.status_code in (400, 404, 405)
    bad_reduce = client.post("/api/ingest/csv", params={"reduce": "../../etc/passwd"}, content=b"a\n")
    assert bad_reduce.status_code == 400 and "unknown reduction" in bad_reduce.text
