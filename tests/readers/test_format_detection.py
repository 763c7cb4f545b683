"""Format detection: the reader a file's first bytes pick, and what picking it costs at start-up."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from flowscope.demo.pcap import write_synthetic_pcap
from flowscope.errors import FlowscopeError
from flowscope.readers.registry import detect

LATER_MODULES = ("flowscope.collect.exports", "flowscope.kafka.reader", "flowscope.parquetflows.reader")


def test_a_capture_folder_is_detected_without_importing_the_later_formats(tmp_path: Path) -> None:
    """Formats listed after ``pcap`` are not imported to read captures (0.1 s of every read's start-up; a file
    no format accepts still imports them all)."""
    folder = tmp_path / "captures"
    folder.mkdir()
    write_synthetic_pcap(folder / "a.pcap", packets=10, flows=2)
    probe = (
        "import sys; from pathlib import Path; from flowscope.readers import registry; "
        f"found = registry.detect(Path({str(folder)!r})); assert registry.get('pcap') is found; "
        f"print(found.name, [m for m in {LATER_MODULES!r} if m in sys.modules])"
    )
    shown = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout
    assert shown.split() == ["pcap", "[]"]


def test_an_empty_file_is_called_empty(tmp_path: Path) -> None:
    """Not 'unrecognised input format ... use --format': no format reads bytes that are not there."""
    empty = tmp_path / "flows.csv"
    empty.write_bytes(b"")
    with pytest.raises(FlowscopeError, match=f"^{empty}: empty \\(no bytes to read\\)$"):
        detect(empty)
    with pytest.raises(FlowscopeError, match=r"^standard input: empty"):
        detect(Path("-"), head=b"")
