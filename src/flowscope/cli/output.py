"""Rendering query results: a rich table on the terminal, or CSV / JSON Lines / Parquet."""

from __future__ import annotations

import errno
import sys
from collections.abc import Callable, Collection
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
import pyarrow as pa
import pyarrow.csv as pacsv

from flowscope.cli.common import OutputFile, one_file
from flowscope.display import textual
from flowscope.errors import FlowscopeError
from flowscope.pipeline import run, tag
from flowscope.schema import Role, role_of
from flowscope.sinks.files import FileSink, format_from_path, write_jsonl

if TYPE_CHECKING:  # imported where a relation is made: commands that never query (collect) skip its 34 MiB
    import duckdb
    from rich.console import Console  # imported where a table is drawn: ``read`` starts without rich

F = TypeVar("F", bound=Callable[..., Any])

OUTPUT_FORMATS = ("table", "csv", "json", "parquet")
_BATCH_ROWS = 100_000
RESULT_TABLE = "result"  # query results are not flows: the pipeline passes them through as they are
# Columns a table may take when stdout is a file or a pipe: no table is that wide, so none is cut.
_UNBOUNDED_WIDTH = 1 << 15


def result_console() -> Console:
    """The stdout console for tables: on a terminal, as wide as the terminal (rich shrinks or wraps
    columns to fit); into a file or a pipe, as wide as the content, so no number or column is cut."""
    from rich.console import Console

    class _ResultConsole(Console):
        def on_broken_pipe(self) -> None:
            """Hand a reader gone away (``| head``) to ``run_cleanly``, which ends quietly with exit 0, as
            for CSV output (rich's own handler exits 1)."""
            raise BrokenPipeError(errno.EPIPE, "stdout closed by its reader")

    console = _ResultConsole(emoji=False)  # flowscope draws none (their table: 2-20 ms to import)
    if not console.is_terminal:
        console.width = _UNBOUNDED_WIDTH
    return console


def _format_cell(value: object, identifier: bool) -> str:
    if value is None:
        return ""
    if identifier or isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".") if value % 1 else f"{value:,.0f}"
    if isinstance(value, int | Decimal):
        return f"{value:,}"
    return str(value)


def print_table(
    table: pa.Table,
    console: Console,
    *,
    title: str | None = None,
    more: bool = False,
    identifiers: Collection[str] = (),
) -> None:
    """``table`` as a rich table. Numbers that name something (a port, an AS, an interface: the catalogue's
    dimensions, and the ``identifiers`` a caller names for columns the catalogue does not know) are shown
    without thousands separators, which would make them read as quantities. Names and cells are shown as they
    are: as rich markup, a value such as ``[/x]`` failed the command and ``:smile:`` became an emoji."""
    from rich.table import Table
    from rich.text import Text

    table = textual(table)
    view = Table(title=title, header_style="bold", show_lines=False)
    for field in table.schema:
        numeric = pa.types.is_integer(field.type) or pa.types.is_floating(field.type) or pa.types.is_decimal(field.type)
        view.add_column(Text(field.name), justify="right" if numeric else "left")
    plain = [field.name in identifiers or role_of(field) is Role.DIMENSION for field in table.schema]
    for row in table.to_pylist():
        view.add_row(*(Text(_format_cell(v, ident)) for v, ident in zip(row.values(), plain, strict=True)))
    console.print(view)
    if more:
        console.print(f"[dim](first {table.num_rows:,} rows shown; use --limit or --format csv for all)[/]")


def result_options(command: F) -> F:
    """``--format`` and ``-o``: how ``query`` and ``top`` give their result."""
    command = click.option(
        "-o",
        "--output",
        type=OutputFile(),
        multiple=True,
        callback=one_file,
        help="Write the result to this file instead of standard output (.parquet, .csv or .jsonl).",
    )(command)
    return click.option(
        "--format",
        "file_format",
        type=click.Choice(OUTPUT_FORMATS),
        default="table",
        show_default=True,
        help="table for reading; csv or json (lines) for programs; parquet needs -o (with -o: its extension).",
    )(command)


def anonymize_flag() -> Callable[[Any], Any]:
    """``--anonymize KEYFILE``: on the commands that produce flows, and on those that output results."""
    return click.option(
        "--anonymize",
        type=click.Path(dir_okay=False),
        metavar="KEYFILE",
        help="Anonymise every address, prefix-preserving (Crypto-PAn; 32-byte key, raw or 64 hex digits).",
    )


def result_anonymizer(path: str | None) -> Callable[[pa.Table], pa.Table]:
    """What ``emit`` passes every result batch through: the anonymisation of ``--anonymize``, else nothing."""
    if path is None:
        return lambda table: table
    from flowscope.transforms.anonymize import Anonymizer  # AES only when asked for: ``top`` starts faster

    return Anonymizer.from_file(path).results


def emit(
    relation: duckdb.DuckDBPyRelation,
    file_format: str,
    output: str | None,
    *,
    limit: int,
    title: str | None = None,
    transform: Callable[[pa.Table], pa.Table] = lambda table: table,
) -> int:
    """Write a query result, each batch through ``transform`` first (``--anonymize``); returns the number of
    rows written."""
    named = format_from_path(Path(output)) if output else None
    if file_format == "table" and output:  # no --format: the file's name says it
        if named is None:
            raise FlowscopeError(f"{output}: name it .parquet, .csv or .jsonl, or give --format csv|json|parquet")
        file_format = "json" if named == "jsonl" else named
    elif named is not None and named != ("jsonl" if file_format == "json" else file_format):
        # CSV in a file named .parquet was written as asked, and then no reader took it for what its name says
        raise FlowscopeError(f"{output} is named a {named} file but --format is {file_format}: leave out --format")
    if file_format == "table":
        rows = transform(relation.limit(limit + 1).to_arrow_table())
        print_table(rows.slice(0, limit), result_console(), title=title, more=rows.num_rows > limit)
        return min(rows.num_rows, limit)
    reader = relation.to_arrow_reader(_BATCH_ROWS)
    if output:
        file = "jsonl" if file_format == "json" else file_format
        sink = FileSink(Path(output), file, schema=reader.schema, table=RESULT_TABLE)
        batches = (tag(transform(pa.Table.from_batches([batch])), RESULT_TABLE) for batch in reader)
        return run(batches, sink).rows_by_table.get(RESULT_TABLE, 0)
    if file_format == "parquet":
        raise FlowscopeError("--format parquet needs -o FILE")
    stream = sys.stdout.buffer
    rows = 0
    first = True
    for batch in reader:
        table = textual(transform(pa.Table.from_batches([batch])))
        if file_format == "csv":
            pacsv.write_csv(table, stream, pacsv.WriteOptions(include_header=first))
        else:
            write_jsonl(table, stream)
        first = False
        rows += table.num_rows
    if first and file_format == "csv":
        stream.write((",".join(f'"{c}"' for c in relation.columns) + "\n").encode())
    stream.flush()
    return rows
