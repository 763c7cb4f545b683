"""The CSV websocket (``/api/ingest/csv``): lines streamed in arrive in the lake as ``flowscope read - --reduce
pairs`` stores them from standard input, however the lines are split into messages; a token, when set, is
required."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI, WebSocket
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect
from tests.web.conftest import serve

from flowscope.lake.layout import Lake
from flowscope.query import open_lake
from flowscope.readers.options import ReadOptions
from flowscope.readers.text_options import TextOptions
from flowscope.reduce import BUILTIN
from flowscope.web import feed as feed_module
from flowscope.web.app import create_app
from flowscope.web.feed import CsvFeed, serve_feed
from flowscope.web.queries import LakeQueries
from helpers import wait_until

CSV = Path(__file__).parents[1] / "csv" / "data" / "unicauca11_example.csv"
ROWS = CSV.read_text().count("\n") - 1
CONTENT = "SELECT * EXCLUDE (time_received) FROM flows ORDER BY ALL"


def stored(lake: Path) -> list[tuple]:
    if not lake.is_dir():
        return []
    with open_lake(lake) as con:
        return con.execute(CONTENT).fetchall()


@pytest.fixture(scope="module")
def from_stdin(tmp_path_factory: pytest.TempPathFactory) -> list[tuple]:
    """What ``flowscope read - --reduce pairs`` stores from the CSV on its standard input."""
    lake = tmp_path_factory.mktemp("stdin") / "lake"
    command = [sys.executable, "-m", "flowscope", "--lake", str(lake), "read", "-", "--reduce", "pairs"]
    subprocess.run(command, input=CSV.read_bytes(), check=True, capture_output=True)
    rows = stored(lake)
    assert 0 < len(rows) < ROWS  # the reduction merged some rows
    return rows


@pytest.mark.parametrize("split", ["lines", "bytes"])
def test_a_feed_stores_what_read_stdin_stores(tmp_path: Path, split: str, from_stdin: list[tuple]) -> None:
    lake = tmp_path / "lake"
    lake.mkdir()
    feed = CsvFeed(Lake.at(lake), ReadOptions(reduce=BUILTIN["pairs"]), tmp_path)
    if split == "lines":  # websocat: a text message per line, without its newline
        for line in CSV.read_text().splitlines():
            feed.add(line.encode(), whole_lines=True)
    else:  # a byte stream cut anywhere, lines split across messages, no newline at the very end
        data = CSV.read_bytes().rstrip(b"\n")
        for start in range(0, len(data), 37):
            feed.add(data[start : start + 37])
    feed.cut(last=True)
    feed.stream.close()
    assert stored(lake) == from_stdin


def test_an_idle_feed_is_stored_while_the_connection_stays_open(tmp_path: Path) -> None:
    """``materialize --follow`` sees lines that arrived ``commit_seconds`` ago, before the sender closes."""
    lake = tmp_path / "lake"
    lake.mkdir()
    app = FastAPI()

    @app.websocket("/feed")
    async def feed_route(websocket: WebSocket) -> None:
        await serve_feed(websocket, Lake.at(lake), ReadOptions(text=TextOptions(commit_seconds=0.2)))

    with TestClient(app).websocket_connect("/feed") as feed:
        feed.send_text(CSV.read_text())
        assert wait_until(lambda: len(stored(lake)) == ROWS, timeout=20)


def test_the_feed_needs_the_token_and_a_known_reduction(tmp_path: Path) -> None:
    (tmp_path / "lake").mkdir()
    guarded = TestClient(create_app(LakeQueries(Lake.at(tmp_path / "lake")), token="s3cret", ingest_max_bytes=1000))
    for url in ("/api/ingest/csv", "/api/ingest/csv?token=wrong", "/api/ingest/csv?token=s3cret&reduce=x.toml"):
        with pytest.raises(WebSocketDisconnect) as refused, guarded.websocket_connect(url) as feed:
            feed.receive_text()
        assert refused.value.code == 1008


def test_a_feed_of_no_known_csv_dialect_is_closed_with_the_reason(tmp_path: Path) -> None:
    (tmp_path / "lake").mkdir()
    api = TestClient(create_app(LakeQueries(Lake.at(tmp_path / "lake")), ingest_max_bytes=1000))
    with pytest.raises(WebSocketDisconnect) as closed, api.websocket_connect("/api/ingest/csv") as feed:
        feed.send_text("a,b,c")
        feed.receive_text()
    assert closed.value.code == 1007 and closed.value.reason.startswith("feed: not a flow CSV: its header (a, b, c")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    lake = tmp_path / "lake"
    lake.mkdir()
    for base in serve(lake, "--ingest"):
        yield base, lake


@pytest.mark.integration
@pytest.mark.slow
def test_lines_sent_to_a_running_server_arrive_reduced(server: tuple[str, Path], from_stdin: list[tuple]) -> None:
    """End to end, as ``gzip -cd flows.csv.gz | websocat ws://.../api/ingest/csv?reduce=pairs`` would send."""
    from websockets.sync.client import connect

    base, lake = server
    with connect(base.replace("http://", "ws://") + "api/ingest/csv?reduce=pairs") as feed:
        for line in CSV.read_text().splitlines():
            feed.send(line)
    wait_until(lambda: len(stored(lake)) == len(from_stdin), timeout=5)
    got = stored(lake)
    print("DEBUG", len(got), len(from_stdin), sum(r[8] for r in got if isinstance(r[8], int)))
    assert got == from_stdin


def test_text_messages_of_one_or_several_lines_arrive_as_read_stdin_stores_them(
    tmp_path: Path, from_stdin: list[tuple], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The receive loop collects text messages and joins them (``GATHER``): a message may be one line without
    its newline, or several lines with or without the last newline; many gatherings, the last one cut by the
    timer."""
    monkeypatch.setattr(feed_module, "GATHER", 4)
    lake = tmp_path / "lake"
    lake.mkdir()
    api = TestClient(create_app(LakeQueries(Lake.at(lake)), ingest_max_bytes=1000))
    lines = CSV.read_text().splitlines()
    with api.websocket_connect("/api/ingest/csv?reduce=pairs") as feed:
        feed.send_text(lines[0])
        for start in range(1, len(lines), 3):
            group = lines[start : start + 3]
            feed.send_text("\n".join(group) + ("\n" if start % 2 else "") if start % 5 else group[0])
            for line in group[1:] if not start % 5 else ():
                feed.send_text(line)
        # cut after commit_seconds (5 s) with the connection open: the client's exit cancels the server side
        assert wait_until(lambda: len(stored(lake)) == len(from_stdin), timeout=30)
    assert stored(lake) == from_stdin
