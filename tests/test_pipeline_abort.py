"""After Ctrl-C each destination says what it keeps: a file nothing, the lake the inputs it committed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner
from tests.helpers import flows

from flowscope.cli import main
from flowscope.lake.layout import Lake
from flowscope.pipeline import Checkpoint, InputRecord, run
from flowscope.sinks.fanout import FanOut
from flowscope.sinks.files import FileSink
from flowscope.sinks.lake import LakeSink

RECORD = InputRecord(name="a.csv", digest="d" * 64, size=1, sample="s", options="o")


def interrupted_after_one_input() -> Iterator[pa.Table | Checkpoint]:
    yield flows(10)
    yield Checkpoint(inputs=[RECORD])
    yield flows(10)
    raise KeyboardInterrupt


def test_each_destination_says_what_it_keeps(tmp_path: Path) -> None:
    output = tmp_path / "out.parquet"
    lake = LakeSink(Lake.at(tmp_path / "lake"), transactional=True)
    with pytest.raises(KeyboardInterrupt) as stopped:
        run(interrupted_after_one_input(), FanOut([lake, FileSink(output)]))
    assert stopped.value.__notes__ == [
        f"lake {tmp_path / 'lake'} keeps the 1 input(s) this run committed (a rerun reads only the rest)",
        f"{output} not written (a file is written only whole)",
    ]
    assert not output.exists()


def test_an_interrupt_before_the_first_commit(tmp_path: Path) -> None:
    def interrupted() -> Iterator[pa.Table]:
        yield flows(10)
        raise KeyboardInterrupt

    lake = tmp_path / "lake"
    for before in ("a new lake, left empty", "what earlier runs stored is kept"):  # made by this run, then not
        with pytest.raises(KeyboardInterrupt) as stopped:
            run(interrupted(), LakeSink(Lake.at(lake), transactional=True))
        assert stopped.value.__notes__ == [f"lake {lake}: no input of this run committed ({before})"]
        assert not list(lake.rglob("*.parquet"))


def test_a_stream_keeps_what_it_published(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt) as stopped:
        run(interrupted_after_one_input(), LakeSink(Lake.at(tmp_path), transactional=False))
    assert stopped.value.__notes__ == [f"lake {tmp_path} keeps the rows published before"]


def test_other_errors_get_no_notes(tmp_path: Path) -> None:
    def failing() -> Iterator[pa.Table]:
        yield flows(10)
        raise ValueError("bad input")

    with pytest.raises(ValueError) as failed:
        run(failing(), FileSink(tmp_path / "out.csv"))
    assert not hasattr(failed.value, "__notes__")


def test_an_interrupted_read_into_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The ``read -o FILE`` path end to end: the interrupt comes from the reader, the message from the sink."""
    source = tmp_path / "flows.csv"
    source.write_text("src_addr,dst_addr,bytes,time_flow_start\n10.0.0.1,10.0.0.2,5,2024-05-01T00:00:00Z\n")

    def interrupt(*_args: object, **_kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("flowscope.sinks.files.FileSink.write", interrupt)
    output = tmp_path / "x.parquet"
    result = CliRunner().invoke(main, ["--lake", str(tmp_path / "lake"), "read", str(source), "-o", str(output)])
    assert result.exit_code == 130, result.output
    assert result.output == f"interrupted; {output} not written (a file is written only whole)\n"
    assert not output.exists()


def test_an_interrupt_while_closing_aborts_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``close`` is inside the abort path: Ctrl-C while a file is being finished left its staging copy behind,
    with the general "what was committed before is kept" instead of the file's own line."""
    output = tmp_path / "out.parquet"
    sink = FileSink(output)

    def interrupted_close() -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(sink, "close", interrupted_close)
    with pytest.raises(KeyboardInterrupt) as stopped:
        run([flows(10)], sink)
    assert stopped.value.__notes__ == [f"{output} not written (a file is written only whole)"]
    assert not list(tmp_path.iterdir())
