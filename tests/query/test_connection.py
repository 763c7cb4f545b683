"""open_lake: SQL helpers, table views, derived views only when asked for, and missing lakes as errors."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import flowscope.lake
from flowscope.errors import FlowscopeError
from flowscope.lake import LakeWriter
from flowscope.query import open_lake, tables_named
from helpers import flows


def one_row(lake_dir: Path, sql: str) -> tuple:
    with open_lake(lake_dir) as con:
        row = con.execute(sql).fetchone()
    assert row is not None
    return row


@pytest.mark.parametrize("cidr, expected", [("10.0.0.0/30", 4 * 2), ("10.0.0.0/8", 50 * 2), ("::/0", 100)])
def test_sql_helpers_filter_by_prefix(lake_dir: Path, cidr: str, expected: int) -> None:
    with LakeWriter(lake_dir) as writer:
        writer.write(flows(100))
    assert one_row(lake_dir, f"SELECT count(*) FROM flows WHERE in_cidr(src_addr, '{cidr}')")[0] == expected
    assert one_row(lake_dir, "SELECT ip_text(dst_addr) FROM flows LIMIT 1")[0] == "192.0.2.1"
    assert one_row(lake_dir, "SELECT count(*) FROM flows WHERE src_addr = ip('10.0.0.7')")[0] == 2


def test_an_empty_lake_has_a_typed_flows_view(lake_dir: Path) -> None:
    lake_dir.mkdir()
    assert one_row(lake_dir, "SELECT count(*), sum(bytes) FROM flows") == (0, None)


def test_a_missing_lake_is_an_error_and_is_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(FlowscopeError, match=f"no lake at {missing} "), open_lake(missing):
        pass
    assert not missing.exists()


def test_derived_views_exist_only_when_asked_for(lake_dir: Path) -> None:
    with LakeWriter(lake_dir) as writer:
        writer.write(flows(10))
    listed = "SELECT view_name FROM duckdb_views() WHERE NOT internal ORDER BY view_name"
    with open_lake(lake_dir) as con:
        assert con.execute(listed).fetchall() == [("flows",)]
        assert con.execute("SELECT service_net(ip('10.1.2.3'))").fetchall() == [("10.1.2",)]  # helpers: always
    with open_lake(lake_dir, views=["conversations"]) as con:
        assert con.execute(listed).fetchall() == [("conversations",), ("flows",)]
        assert con.execute("SELECT count(*) FROM conversations").fetchall() == [(10,)]


def test_no_lake_module_imports_the_query_layer() -> None:
    for path in Path(flowscope.lake.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom | ast.Import):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                assert not any(n.startswith(("flowscope.query", "flowscope.views")) for n in names), path


def test_tables_limits_the_table_views_to_those_named(lake_dir: Path) -> None:
    with LakeWriter(lake_dir) as writer:
        writer.write(flows(10))
    listed = "SELECT view_name FROM duckdb_views() WHERE NOT internal ORDER BY view_name"
    with open_lake(lake_dir, tables=tables_named("SELECT 1")) as con:
        assert con.execute(listed).fetchall() == []
    with open_lake(lake_dir, tables=tables_named("SELECT count(*) FROM Flows")) as con:
        assert con.execute("SELECT count(*) FROM flows").fetchall() == [(10,)]
    with open_lake(lake_dir, views=["conversations"], tables=tables_named("SELECT 1")) as con:  # needs flows
        assert con.execute(listed).fetchall() == [("conversations",), ("flows",)]
