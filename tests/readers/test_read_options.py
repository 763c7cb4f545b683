"""Typed reader options: values checked when built, readers opened without click, fingerprints of what shapes output."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from flowscope.capture.options import MeterOptions
from flowscope.collect.options import ExportOptions
from flowscope.errors import FlowscopeError
from flowscope.nfdump.options import RecordSelection
from flowscope.readers.options import FINGERPRINT_CHARS, ReadOptions
from flowscope.readers.text_options import TextOptions
from flowscope.reduce import BUILTIN, load

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_CSV = ROOT / "tests" / "csv" / "data" / "unicauca11_example.csv"


@pytest.fixture
def sampling_config(tmp_path: Path) -> Path:
    path = tmp_path / "sampling.toml"
    path.write_text("[sampling]\ndefault = 10\n")
    return path


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: MeterOptions(idle=0), "--active and --idle must be positive"),
        (lambda: MeterOptions(tunnels="both"), "--tunnels must be one of outer, inner"),
        (lambda: MeterOptions(max_flows=0), "--max-flows must be at least 1"),
        (lambda: TextOptions(tz="Mars/Olympus_Mons"), "unknown time zone 'Mars/Olympus_Mons'"),
        (lambda: TextOptions(commit_rows=0), "--commit-rows must be at least 1"),
        (lambda: ExportOptions(sampling_config=Path("/nonexistent/sampling.toml")), "no such file"),
        (lambda: ExportOptions(tunnels="sideways"), "--tunnels must be one of"),
        (lambda: RecordSelection(exporter="router-1"), "not an IP address: 'router-1'"),
        (lambda: RecordSelection(max_records=0), "--max-records must be at least 1"),
    ],
)
def test_bad_values_are_an_error_when_the_options_are_built(build, message: str) -> None:
    with pytest.raises(FlowscopeError, match=message):
        build()


def test_same_options_give_the_same_short_fingerprint() -> None:
    for name in ("pcap", "csv", "nfdump", "exports"):
        first = ReadOptions(meter=MeterOptions(idle=30), columns=("bytes", "packets")).fingerprint(name)
        again = ReadOptions(meter=MeterOptions(idle=30.0), columns=("packets", "bytes")).fingerprint(name)
        assert first == again and len(first) == FINGERPRINT_CHARS


def test_an_option_the_reader_does_not_use_leaves_its_fingerprint(sampling_config: Path) -> None:
    base = ReadOptions()
    others = ReadOptions(
        text=TextOptions(tz="Europe/Paris", strict=True, commit_rows=10, commit_seconds=0.5),
        exports=ExportOptions(sampling_config=sampling_config, tunnels="inner"),
        selection=RecordSelection(exporter="10.0.0.1", drop_arp=True),
    )
    assert base.fingerprint("pcap") == others.fingerprint("pcap")
    captures = ReadOptions(meter=MeterOptions(idle=1, uniflow=True, tunnels="inner"))
    for name in ("csv", "cic-csv", "nfdump"):
        assert base.fingerprint(name) == captures.fingerprint(name)
    # a CSV's commit limits cut a live feed into batches and --strict only stops a read early: same flows
    assert base.fingerprint("csv") == ReadOptions(text=TextOptions(strict=True, commit_rows=10)).fingerprint("csv")


@pytest.mark.parametrize(
    ("reader", "changed"),
    [
        ("pcap", {"meter": MeterOptions(idle=30)}),
        ("pcap", {"meter": MeterOptions(link_bytes=True)}),
        ("pcap", {"meter": MeterOptions(tunnels="inner")}),
        ("pcap", {"meter": MeterOptions(max_flows=5)}),
        ("csv", {"text": TextOptions(tz="America/Sao_Paulo")}),
        ("nfdump-csv", {"text": TextOptions(tz="America/Sao_Paulo")}),
        ("nfdump", {"selection": RecordSelection(in_if=3)}),
        ("nfdump", {"selection": RecordSelection(max_records=100)}),
        ("nfdump", {"columns": ("bytes",)}),
        ("exports", {"exports": ExportOptions(tunnels="inner")}),
        ("pcap", {"reduce": BUILTIN["pairs"]}),
        ("csv", {"reduce": BUILTIN["conversations"]}),
    ],
)
def test_an_option_that_shapes_the_output_changes_the_fingerprint(reader: str, changed: dict[str, object]) -> None:
    assert ReadOptions().fingerprint(reader) != replace(ReadOptions(), **changed).fingerprint(reader)


def test_the_reader_is_part_of_the_fingerprint() -> None:
    options = ReadOptions()
    assert len({options.fingerprint(name) for name in ("pcap", "exports", "csv", "cic-csv")}) == 4


def test_exporter_spellings_of_one_address_are_one_selection() -> None:
    mapped = ReadOptions(selection=RecordSelection(exporter="::ffff:10.0.0.1")).fingerprint("nfdump")
    assert mapped == ReadOptions(selection=RecordSelection(exporter="10.0.0.1")).fingerprint("nfdump")
    assert mapped != ReadOptions(selection=RecordSelection(exporter="10.0.0.2")).fingerprint("nfdump")


def test_sampling_config_counts_by_content_not_path(sampling_config: Path, tmp_path: Path) -> None:
    def fingerprint(path: Path) -> str:
        return ReadOptions(exports=ExportOptions(sampling_config=path)).fingerprint("exports")

    before = fingerprint(sampling_config)
    assert before != ReadOptions().fingerprint("exports")
    moved = tmp_path / "elsewhere.toml"
    moved.write_bytes(sampling_config.read_bytes())
    assert fingerprint(moved) == before
    sampling_config.write_text("[sampling]\ndefault = 100\n")
    assert fingerprint(sampling_config) != before


def test_a_reduction_counts_by_what_it_does_not_its_name(tmp_path: Path) -> None:
    spec = tmp_path / "my-pairs.toml"
    spec.write_text(
        'description = "same as the built-in"\nkey = ["src_addr", "src_port", "dst_addr", "dst_port"]\n'
        '[fields]\nduration = "sum"\nbytes = "sum"\npackets = "sum"\nbytes_rev = "sum"\npackets_rev = "sum"\n'
    )
    from_file = ReadOptions(reduce=load(str(spec))).fingerprint("csv")
    assert from_file == ReadOptions(reduce=BUILTIN["pairs"]).fingerprint("csv")


def test_readers_open_and_fingerprint_without_click_in_any_process() -> None:
    """A program (no command line) reads a CSV; the fingerprint is the same whatever the hash seed."""
    program = (
        "import sys\n"
        "from pathlib import Path\n"
        "from flowscope.readers import registry\n"
        "from flowscope.readers.options import ReadOptions\n"
        "options = ReadOptions(columns=('bytes', 'packets', 'src_addr'))\n"
        f"source = registry.get('csv').open([Path({str(EXAMPLE_CSV)!r})], options)\n"
        "rows = sum(batch.num_rows for batch in source)\n"
        "assert 'click' not in sys.modules, 'a reader imported click'\n"
        "print(rows, options.fingerprint('csv'), options.fingerprint('nfdump'))\n"
    )
    outputs = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "PYTHONHASHSEED": seed}
        done = subprocess.run([sys.executable, "-c", program], env=env, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
        outputs.add(done.stdout)
    assert len(outputs) == 1 and outputs.pop().startswith("8 ")
