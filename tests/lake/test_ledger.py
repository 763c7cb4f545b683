"""The ingest ledger: commits, repeats recognised by content and options, recovery after a crash."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from flowscope.lake.layout import Lake
from flowscope.lake.ledger import LEDGER_DIR, Ledger, input_record, recover
from flowscope.pipeline import Checkpoint
from flowscope.query import open_lake
from flowscope.sinks.lake import LakeSink
from helpers import flows


def rows(lake: Path) -> int:
    with open_lake(lake) as con:
        return con.execute("SELECT count(*) FROM flows").fetchone()[0]


@pytest.fixture
def an_input(tmp_path: Path) -> Path:
    path = tmp_path / "input.bin"
    path.write_bytes(os.urandom(3 << 20))  # over two sample windows
    return path


def test_a_commit_records_its_inputs_with_the_data(tmp_path, an_input):
    lake = Lake.at(tmp_path / "lake")
    sink = LakeSink(lake, transactional=True)
    sink.write(flows(100))
    sink.flush()  # no checkpoint: a stream's flush publishes directly
    sink.write(flows(10, first_id=100))
    sink._writer("flows").spill()
    assert rows(lake.root) == 100  # staged, not visible
    record = input_record(an_input, "opts", "d1")
    sink.flush(Checkpoint(inputs=(record,)))
    assert rows(lake.root) == 110
    (entry,) = [json.loads(p.read_text()) for p in (lake.root / LEDGER_DIR).glob("*.json")]
    assert entry["inputs"][0]["digest"] == "d1" and len(entry["files"]) == 1


def test_repeats_are_found_by_content_and_options_not_by_name(tmp_path, an_input):
    lake = Lake.at(tmp_path / "lake")
    ledger = Ledger(lake)
    from flowscope.lake.ledger import content_digest

    ledger.commit(Checkpoint(inputs=(input_record(an_input, "opts", content_digest(an_input)),)), [], "w")
    copy = tmp_path / "renamed.bin"
    shutil.copy(an_input, copy)
    assert Ledger(lake).find(copy, "opts") is not None
    assert Ledger(lake).find(copy, "other options") is None
    changed = bytearray(copy.read_bytes())
    changed[(3 << 20) // 2] ^= 1  # a byte in the middle: same size and sample, other digest
    copy.write_bytes(changed)
    assert Ledger(lake).find(copy, "opts") is None


def test_recovery_rolls_a_recorded_commit_forward_and_an_unrecorded_one_back(tmp_path, an_input):
    lake = Lake.at(tmp_path / "lake")
    dead = LakeSink(lake, transactional=True)
    dead.write(flows(5, first_id=7))
    dead._writer("flows").spill()
    (staged,) = dead._writer("flows").staged
    orphan = staged[0].with_name(staged[0].name.replace(f"-{os.getpid()}-", "-999999999-"))
    staged[0].rename(orphan)  # as if written by a writer that no longer runs
    recorded = LakeSink(lake, transactional=True)  # opening a lake sink recovers: the orphan goes
    assert not orphan.exists()
    recorded.write(flows(7))
    writer = recorded._writer("flows")
    writer.spill()
    recorded.ledger.commit(Checkpoint(inputs=(input_record(an_input, "o", "d"),)), writer.staged, "w")
    # the process dies here, after the commit point and before the renames
    assert rows(lake.root) == 0
    assert recover(lake) == (1, 0)
    assert rows(lake.root) == 7
    assert not list(lake.root.rglob("*.tmp"))


def test_a_live_writers_staged_files_are_left_alone(tmp_path):
    lake = Lake.at(tmp_path / "lake")
    sink = LakeSink(lake, transactional=True)
    sink.write(flows(3))
    sink._writer("flows").spill()
    assert recover(lake) == (0, 0)
    sink.close()
    assert rows(lake.root) == 3
