from pathlib import Path

import pytest
from tests.conftest import ROOT

from flowscope.schema import FLOW_SCHEMA, TABLES
from flowscope.schema_doc import REGENERATE, main, render, render_table

SCHEMA_DOC = ROOT / "docs" / "SCHEMA.md"


def test_docs_schema_is_the_catalogue_rendering() -> None:
    text = SCHEMA_DOC.read_text()
    assert all(f"<!-- generated: {table} -->" in text for table in TABLES)
    assert render(text) == text, f"docs/SCHEMA.md differs from the column catalogue; run: {REGENERATE}"


def test_render_replaces_only_the_generated_blocks() -> None:
    stale = "# prose\n\n<!-- generated: flows -->\n| old |\n<!-- end -->\n\nmore prose\n"
    rendered = render(stale)
    assert rendered == f"# prose\n\n<!-- generated: flows -->\n{render_table('flows')}<!-- end -->\n\nmore prose\n"
    assert render(rendered) == rendered
    table = render_table("flows").splitlines()
    assert len(table) == 2 + len(FLOW_SCHEMA)
    assert table[10] == (
        "| `src_addr` | binary(16) | IP address | address | source IP address (see [Addresses](#addresses)) "
        "| `bytes src_addr = 6` | `Nullable(FixedString(16))` | `inet` |"
    )


def test_entry_point_checks_and_rewrites(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = tmp_path / "SCHEMA.md"
    doc.write_text("intro\n<!-- generated: interface_counters -->\n<!-- end -->\n")
    assert main(["--check", str(doc)]) == 1
    assert REGENERATE in capsys.readouterr().err
    assert main([str(doc)]) == 0
    assert main(["--check", str(doc)]) == 0
    assert "| `if_speed` | uint64 | bit/s | gauge |" in doc.read_text()
