"""docs/SCHEMA.md's column tables, rendered from the catalogue (``flowscope.schema``).

The file is hand-written prose around generated blocks, one per lake table::

    <!-- generated: flows -->
    | column | type | ... |
    <!-- end -->

``python -m flowscope.schema_doc docs/SCHEMA.md`` rewrites every block from the catalogue and leaves the
prose alone; ``--check`` only reports (exit 1) when a block differs, for CI and the docs test.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import pyarrow as pa

from flowscope.schema import Column, documented_columns

REGENERATE = "PYTHONPATH=src python -m flowscope.schema_doc docs/SCHEMA.md"
_BLOCK = re.compile(r"(<!-- generated: (?P<table>\w+) -->\n).*?(<!-- end -->)", re.DOTALL)
_HEADER = ("column", "type", "unit", "role", "meaning", "GoFlow2 field", "ClickHouse", "PostgreSQL")


def _arrow_text(arrow_type: pa.DataType) -> str:
    """Arrow types as the prose writes them: ``timestamp[ns, UTC]``, ``binary(16)``, ``uint32``."""
    if isinstance(arrow_type, pa.TimestampType):
        return f"timestamp[{arrow_type.unit}, {arrow_type.tz}]" if arrow_type.tz else f"timestamp[{arrow_type.unit}]"
    if isinstance(arrow_type, pa.FixedSizeBinaryType):
        return f"binary({arrow_type.byte_width})"
    return str(arrow_type)


def _row(column: Column) -> tuple[str, ...]:
    goflow2 = column.goflow2
    return (
        f"`{column.name}`",
        _arrow_text(column.arrow_type),
        column.unit,
        column.role.value,
        column.meaning,
        f"`{goflow2.proto_type} {goflow2.name} = {goflow2.number}`" if goflow2 else "—",
        f"`{column.clickhouse}`",
        f"`{column.postgres}`",
    )


def render_table(table: str) -> str:
    """The Markdown table of one lake table's columns (ends with a newline)."""
    rows = [_HEADER, tuple("---" for _ in _HEADER), *(_row(c) for c in documented_columns(table))]
    return "".join("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |\n" for row in rows)


def render(text: str) -> str:
    """``text`` with every generated block replaced by the catalogue's current table."""
    return _BLOCK.sub(lambda m: m.group(1) + render_table(m.group("table")) + m.group(3), text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flowscope.schema_doc", description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path, help="the Markdown file to update (docs/SCHEMA.md)")
    parser.add_argument("--check", action="store_true", help="only report whether the file is up to date")
    args = parser.parse_args(argv)
    text = args.path.read_text()
    rendered = render(text)
    if rendered == text:
        return 0
    if args.check:
        print(f"{args.path} is not the catalogue's rendering; run: {REGENERATE}", file=sys.stderr)
        return 1
    args.path.write_text(rendered)
    return 0


if __name__ == "__main__":
    sys.exit(main())
