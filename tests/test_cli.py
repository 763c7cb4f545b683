import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from flowscope.cli import main
from flowscope.cli.common import parse_time
from flowscope.demo.pcap import write_synthetic_pcap
from flowscope.lake import LakeWriter
from helpers import HOUR_NS, flows


@pytest.fixture
def filled_lake(lake_dir):
    with LakeWriter(lake_dir) as writer:
        writer.write(flows(240, spacing_ns=HOUR_NS // 10))
    return lake_dir


def invoke(lake_dir, *args):
    return CliRunner().invoke(main, ["--lake", str(lake_dir), *args], catch_exceptions=False)


def test_query_as_csv_shows_addresses_as_text(filled_lake):
    result = invoke(filled_lake, "query", "SELECT src_addr, bytes FROM flows ORDER BY bytes LIMIT 2", "--format", "csv")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == ['"src_addr","bytes"', '"10.0.0.0",0', '"10.0.0.1",1']


def test_query_as_json_lines(filled_lake):
    result = invoke(
        filled_lake, "query", "SELECT time_flow_start, dst_addr FROM flows ORDER BY 1 LIMIT 1", "--format", "json"
    )
    row = json.loads(result.output)
    assert row == {"time_flow_start": "2024-05-01T00:00:00.000000000Z", "dst_addr": "192.0.2.1"}


def test_query_to_parquet_file_keeps_raw_values(filled_lake, tmp_path):
    import pyarrow.parquet as pq

    out = tmp_path / "out.parquet"
    result = invoke(filled_lake, "query", "SELECT src_addr, bytes FROM flows", "--format", "parquet", "-o", str(out))
    assert result.exit_code == 0, result.output
    table = pq.read_table(out)
    assert table.num_rows == 240 and table.schema.field("src_addr").type.equals(__import__("pyarrow").binary())


def test_query_table_output(filled_lake):
    result = invoke(filled_lake, "query", "SELECT count(*) AS n FROM flows")
    assert "240" in result.output


def test_bad_sql_is_one_clean_line_and_nonzero_exit(filled_lake):
    result = CliRunner().invoke(main, ["--lake", str(filled_lake), "query", "SELECT nope FROM flows"])
    assert result.exit_code == 2
    assert result.output.startswith("error: ") and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_top_sources_with_time_window_and_filter(filled_lake):
    result = invoke(
        filled_lake,
        "top",
        "--by",
        "src",
        "-n",
        "3",
        "--format",
        "csv",
        "--since",
        "2024-05-01T06:00:00",
        "--until",
        "2024-05-01T12:00",
        "--where",
        "proto = 6",
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == '"src_addr","flows","packets","bytes","share_pct"'
    assert len(lines) == 4
    assert lines[1].startswith('"10.0.0.')


def test_top_host_counts_both_endpoints(filled_lake):
    result = invoke(filled_lake, "top", "--by", "host", "-n", "1", "--metric", "flows", "--format", "csv")
    assert result.output.splitlines()[1].startswith('"192.0.2.1",240,')


def test_top_filter_language_with_and_without_where(filled_lake):
    """--filter takes the filter language, --where raw SQL; both given, a flow must pass both (host: twice)."""
    csv = ("--by", "host", "-n", "1", "--metric", "flows", "--format", "csv")
    result = invoke(filled_lake, "top", *csv, "--filter", "src_addr << 10.0.0.0/30 and proto in (tcp, udp)")
    assert result.output.splitlines()[1].startswith('"192.0.2.1",20,'), result.output
    both = invoke(filled_lake, "top", *csv, "--filter", "src_addr << 10.0.0.0/30", "--where", "bytes < 100")
    assert both.output.splitlines()[1].startswith('"192.0.2.1",8,'), both.output


def test_top_filter_error_points_at_its_position(filled_lake):
    result = CliRunner().invoke(main, ["--lake", str(filled_lake), "top", "--filter", "dst_port = https"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.splitlines()[1:] == ["  dst_port = https", "             ^"]


def test_demo_fills_the_lake_and_reports(lake_dir):
    result = invoke(lake_dir, "demo", "--flows", "20000", "--days", "1", "--packets", "5000")
    assert result.exit_code == 0, result.output
    assert "top talkers" in result.output
    sql = "SELECT type, count(*), sum(packets + packets_rev) FROM flows GROUP BY type ORDER BY type"
    count = invoke(lake_dir, "query", sql, "--format", "csv")
    pcap, synthetic = count.output.splitlines()[1:]
    assert synthetic.startswith('"synthetic",20000,')
    assert pcap.startswith('"pcap",') and pcap.endswith(",5000")
    info = invoke(lake_dir, "lake", "info")
    assert "flows" in info.output


def test_lake_compact_and_retain_commands(filled_lake):
    assert invoke(filled_lake, "lake", "compact").exit_code == 0
    result = invoke(filled_lake, "lake", "retain", "--days", "1")
    assert result.exit_code == 0
    assert invoke(filled_lake, "query", "SELECT count(*) FROM flows", "--format", "csv").output.splitlines()[1] == "0"


def test_parse_time_forms():
    assert parse_time("2024-05-01").isoformat() == "2024-05-01T00:00:00+00:00"
    assert parse_time("1714521600").isoformat() == "2024-05-01T00:00:00+00:00"
    now = parse_time("2024-05-02T00:00:00Z")
    assert parse_time("6h", now=now).isoformat() == "2024-05-01T18:00:00+00:00"


def test_unknown_input_format_is_a_clear_error(tmp_path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00" * 100)
    result = CliRunner().invoke(main, ["--lake", str(tmp_path / "l"), "read", str(junk)])
    assert result.exit_code == 2 and "unrecognised input format" in result.output


def test_lake_compact_can_reduce(filled_lake):
    with LakeWriter(filled_lake) as writer:  # every pair a second time
        writer.write(flows(240, spacing_ns=HOUR_NS // 10))
    result = invoke(filled_lake, "lake", "compact", "--reduce", "pairs")
    assert result.exit_code == 0, result.output
    pairs = invoke(filled_lake, "query", "SELECT count(*), sum(bytes) FROM flows", "--format", "csv").output
    assert pairs.splitlines()[1] == f"240,{2 * sum(range(240))}"


def test_help_lists_every_command_and_each_loads_on_first_use():
    from flowscope.cli import COMMANDS

    result = CliRunner().invoke(main, ["--help"], catch_exceptions=False)
    assert result.exit_code == 0
    listed = result.output.split("Commands:")[1]
    for name in COMMANDS:
        command = main.get_command(None, name)
        assert command is not None and command.name == name
        line = next(line for line in listed.splitlines() if line.startswith(f"  {name} "))
        assert " ".join(command.get_short_help_str(limit=200).split()[:3]) in line  # its short help, however cut


def test_top_by_port_names_the_protocol(filled_lake):
    result = invoke(filled_lake, "top", "--by", "port", "--format", "csv")
    assert result.output.splitlines()[:2] == [
        '"protocol","dst_port","flows","packets","bytes","share_pct"',
        f'"tcp",443,240,240,{sum(range(240))},100',
    ]


CSV_EXAMPLE = Path(__file__).parent / "csv" / "data" / "unicauca11_example.csv"


def test_read_inputs_of_different_formats_in_one_call(lake_dir, tmp_path):
    capture = tmp_path / "small.pcap"
    write_synthetic_pcap(capture, packets=500, flows=20)
    result = invoke(lake_dir, "read", str(capture), str(CSV_EXAMPLE), str(capture))
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "2 input(s) (pcap, csv)" in said and f"{capture}: named again in this read; read once" in said
    result = invoke(lake_dir, "query", "--format", "csv", "SELECT sum(packets + packets_rev) FROM flows")
    csv_packets = (22 + 2 + 3 + 1 + 5 + 136 + 5 + 3) + (55 + 3 + 12)  # forward + backward of the eight rows
    assert int(result.output.strip().splitlines()[-1]) == 500 + csv_packets


def test_read_a_directory_of_mixed_formats_is_a_clear_error(lake_dir, tmp_path):
    folder = tmp_path / "inputs"
    folder.mkdir()
    write_synthetic_pcap(folder / "a.pcap", packets=100, flows=5)
    (folder / "b.csv").write_bytes(CSV_EXAMPLE.read_bytes())
    (folder / "c.pcap.part").write_bytes(b"")  # empty: ignored when telling formats apart
    result = invoke(lake_dir, "read", str(folder))
    assert result.exit_code == 2
    assert "more than one format" in result.output and "b.csv" in result.output


def test_read_a_capture_directory_with_other_files_sets_them_aside(lake_dir, tmp_path):
    folder = tmp_path / "captures"
    folder.mkdir()
    write_synthetic_pcap(folder / "a.pcap", packets=100, flows=5)
    (folder / "SHA256SUMS").write_text("0123  a.pcap\n")
    result = invoke(lake_dir, "read", str(folder))
    assert result.exit_code == 0, result.output
    assert "1 file(s) in the given folders are not captures" in result.output


# Every command that reads the lake; {tmp} is where it would write files of its own.
LAKE_READERS = {
    "query": ["query", "SELECT count(*) FROM flows", "--format", "csv"],
    "query-derived-view": ["query", "SELECT count(*) FROM services_by_day", "--format", "csv"],
    "top": ["top", "--format", "csv"],
    "lake-info": ["lake", "info"],
    "lake-compact": ["lake", "compact"],
    "lake-retain": ["lake", "retain", "--days", "1"],
    "materialize": ["materialize", "pairs", "--to", "sqlite:///{tmp}/pairs.db", "--table", "pairs"],
    "profile": ["profile", "--from-lake", "-o", "{tmp}/profile.csv"],
}


@pytest.mark.parametrize("command", LAKE_READERS.values(), ids=LAKE_READERS)
def test_a_missing_lake_is_one_clear_error(tmp_path, command):
    missing = tmp_path / "no-such-lake"
    args = [arg.format(tmp=tmp_path) for arg in command]
    result = CliRunner().invoke(main, ["--lake", str(missing), *args])
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"error: no lake at {missing} (") and len(result.output.splitlines()) == 1
    assert not any(tmp_path.iterdir())  # no lake, database or profile was made


@pytest.mark.parametrize("command", LAKE_READERS.values(), ids=LAKE_READERS)
def test_an_existing_empty_lake_answers_empty(lake_dir, tmp_path, command):
    lake_dir.mkdir()
    result = invoke(lake_dir, *(arg.format(tmp=tmp_path) for arg in command))
    assert result.exit_code == 0, result.output
    if command[0] == "query":
        assert result.output.splitlines()[1] == "0"
    if command[0] == "top":
        assert len(result.output.splitlines()) == 1  # the header only
