import pyarrow as pa
from rich.console import Console

from flowscope.cli.output import print_table


def _cells(table: pa.Table, identifiers: tuple[str, ...] = ()) -> list[str]:
    console = Console(width=400, record=True, color_system=None)
    print_table(table, console, identifiers=identifiers)
    body = console.export_text().splitlines()[3]  # title-less rich table: top rule, header, rule, first row
    return [cell.strip() for cell in body.strip("│ ").split("│")]


def test_catalogue_dimensions_are_shown_without_thousands_separators() -> None:
    table = pa.table(
        {
            "src_port": pa.array([8080], pa.uint16()),
            "src_as": pa.array([64512], pa.uint32()),
            "sequence_num": pa.array([123456], pa.uint32()),
            "bytes": pa.array([1234567], pa.uint64()),
            "sampling_rate": pa.array([1000], pa.uint64()),
            "port": pa.array([8080], pa.int32()),  # renamed in SQL: the catalogue does not know it
            "flows": pa.array([4321], pa.int64()),
        }
    )
    assert _cells(table) == ["8080", "64512", "123456", "1,234,567", "1,000", "8,080", "4,321"]


def test_callers_name_identifier_columns_the_catalogue_does_not_know() -> None:
    table = pa.table({"template_id": pa.array([1024], pa.uint16()), "record_length": pa.array([1500], pa.uint32())})
    assert _cells(table, identifiers=("template_id",)) == ["1024", "1,500"]


def test_names_and_values_are_shown_as_they_are_not_as_markup() -> None:
    table = pa.table({"[/x]": pa.array(["[/y]"]), "b": pa.array([":smile: [bold]t"])})
    console = Console(width=400, record=True, color_system=None)
    print_table(table, console)
    header, body = console.export_text().splitlines()[1:4:2]
    assert [cell.strip() for cell in header.strip("┃ ").split("┃")] == ["[/x]", "b"]
    assert [cell.strip() for cell in body.strip("│ ").split("│")] == ["[/y]", ":smile: [bold]t"]
