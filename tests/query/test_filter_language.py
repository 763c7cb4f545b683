"""The filter language: parses into parameterised SQL, selects the right flows, reports errors where they are,
and never lets typed text into the SQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowscope.lake import LakeWriter
from flowscope.query import dialects, open_lake
from flowscope.query.filter_language import FilterError, compile_filter
from helpers import flows

# flows(100): src 10.0.0.(id % 50), dst 192.0.2.1, src_port = id, dst_port 443, tcp, bytes = id


@pytest.fixture
def lake100(lake_dir: Path) -> Path:
    with LakeWriter(lake_dir) as writer:
        writer.write(flows(100))
    return lake_dir


def count(lake: Path, text: str) -> int:
    compiled = compile_filter(text)
    with open_lake(lake) as con:
        row = con.execute(f"SELECT count(*) FROM flows WHERE {compiled.sql}", compiled.params).fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", 100),
        ("src_addr << 10.0.0.0/30", 8),
        ("src_addr << 10.0.0.0/8 and dst_port = 443 and proto in (tcp, udp)", 100),
        ("proto in (udp, icmp)", 0),
        ("proto = 6", 100),
        ("addr = 192.0.2.1", 100),
        ("addr != 192.0.2.1", 0),  # neither side equals
        ("addr != 10.0.0.7", 98),
        ("src_port < 10 or bytes >= 95", 15),
        ("not (src_port < 10 or bytes >= 95)", 85),
        ("NOT src_port < 50 AND src_port <= 0x3f", 14),
        ("src_addr in (10.0.0.1, 10.0.0.2/31)", 6),
        ("src_port not in (1, 2, 3)", 97),
        ("port = 443", 100),
        ("type = 'test'", 100),
        ('type = "te""st"', 0),
        ("time_flow_start >= 2024-05-01T00:00:00.050Z", 50),
        ("time_flow_start < 1714521600", 0),
        ("as = 0 or src_as != 0", 0),  # AS columns are null in these flows: nothing compares true
    ],
)
def test_filters_select_the_right_flows(lake100: Path, text: str, expected: int) -> None:
    assert count(lake100, text) == expected


def test_values_become_parameters_not_sql() -> None:
    compiled = compile_filter("src_addr << 10.0.0.0/8 and dst_port = 443 and proto in (tcp, udp)")
    assert compiled.sql == (
        '(("src_addr" BETWEEN $f0l AND $f0h) AND ("dst_port" = $f1) AND ("proto" = $f2 OR "proto" = $f3))'
    )
    assert compiled.params["f0l"] == bytes(10) + b"\xff\xff\x0a\x00\x00\x00"
    assert [compiled.params[k] for k in ("f1", "f2", "f3")] == [443, 6, 17]
    assert compile_filter("proto = 6", prefix="g").sql == '("proto" = $g0)'


def test_each_store_gets_its_own_placeholders_and_value_types() -> None:
    text = "src_addr << 10.0.0.0/8 and time_flow_start >= 2024-03-01T00:00:00Z and src_mac = 00:11:22:33:44:55"
    clickhouse = compile_filter(text, dialect=dialects.clickhouse())
    assert clickhouse.sql == (
        '(("src_addr" BETWEEN unhex(%(f0l)s) AND unhex(%(f0h)s)) AND ("time_flow_start" >= %(f1)s) '
        'AND ("src_mac" = %(f2)s))'
    )
    assert clickhouse.params == {
        "f0l": "00000000000000000000ffff0a000000", "f0h": "00000000000000000000ffff0affffff",
        "f1": 1_709_251_200_000_000_000, "f2": 0x001122334455,
    }  # fmt: skip
    postgres = compile_filter(text, dialect=dialects.POSTGRES)
    assert postgres.sql == (
        '(("src_addr" BETWEEN CAST(%(f0l)s AS inet) AND CAST(%(f0h)s AS inet)) AND ("time_flow_start" >= %(f1)s) '
        'AND ("src_mac" = CAST(%(f2)s AS macaddr)))'
    )
    assert postgres.params["f0l"] == "10.0.0.0" and postgres.params["f2"] == "00:11:22:33:44:55"
    # PostgreSQL's IPv4 inet is not inside ::/0 (another family): a prefix holding the mapped range names it
    everything = compile_filter("src_addr << ::/0", dialect=dialects.POSTGRES)
    assert (
        'family("src_addr") = 4' in everything.sql
        and everything.params["f0h"] == "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
    )


@pytest.mark.parametrize(
    "text",
    [
        "type = '; DROP TABLE flows; --'",
        "type = 'x'' OR ''1''=''1'",
        'type = "a\' OR 1=1 --"',
        "community_id = '/* comment */ read_csv(''/etc/passwd'')'",
    ],
)
def test_quoted_text_reaches_the_database_only_as_a_parameter(lake100: Path, text: str) -> None:
    compiled = compile_filter(text)
    assert compiled.sql.count("$f0") == 1 and "DROP" not in compiled.sql and "1=1" not in compiled.sql
    for dialect in (dialects.clickhouse(), dialects.POSTGRES):
        elsewhere = compile_filter(text, dialect=dialect)
        assert elsewhere.sql.count("%(f0)s") == 1 and "DROP" not in elsewhere.sql and "1=1" not in elsewhere.sql
    assert count(lake100, text) == 0


@pytest.mark.parametrize(
    "text, position, reason",
    [
        ("proto = 6; DROP TABLE flows", 9, "unexpected character ';'"),
        ("proto = 6 -- comment", 10, "expected 'and', 'or'"),
        ("proto = 6 /* x */", 11, "unexpected character '*'"),
        ("dst_port = sum(bytes)", 11, "dst_port takes a number"),
        ("proto = tcp' OR '1'='1", 11, "expected 'and', 'or'"),
        ("type = 'open", 7, "unterminated quoted string"),
        ("src_addr = ip_text(src_addr)", 11, "not an IP address"),
        ("bytes = 1 or 1 = 1", 13, "unknown column '1'"),
        ("src_adr << 10.0.0.0/8", 0, "unknown column 'src_adr'"),
        ("dst_port = 70000", 11, "between 0 and 65535"),
        ("dst_port << 10.0.0.0/8", 9, "'<<' needs an address column"),
        ("src_addr << 10.0.0.0/33", 12, "not an address or CIDR prefix"),
        ("(proto = 6", 10, "expected ')'"),
        ("proto in 6", 9, "expected '(' after 'in'"),
        ("proto not 6", 10, "expected 'in' after 'not'"),
        ("proto", 5, "expected an operator"),
        ("proto = ", 8, "expected a value"),
        ("and", 0, "expected a column name"),
        ("time_flow_start > yesterday", 18, "cannot read time"),
    ],
)
def test_errors_name_their_position(text: str, position: int, reason: str) -> None:
    with pytest.raises(FilterError) as raised:
        compile_filter(text)
    error = raised.value
    assert (error.position, reason in error.reason) == (position, True), error.reason
    first, shown, caret = str(error).splitlines()
    assert first.startswith("filter: ") and shown == f"  {text}" and caret == "  " + " " * position + "^"


def test_deep_nesting_is_one_clear_error() -> None:
    """Found by fuzzing (fuzz/targets/filter.py): a thousand '(' or 'not' ended in RecursionError (a 500 in the
    console); nesting beyond ``MAX_DEPTH`` is a FilterError, and up to it compiles."""
    from flowscope.query.filter_language import MAX_DEPTH, FilterError, compile_filter

    for text in ("(" * 1000 + "port = 1" + ")" * 1000, "not " * 1000 + "port = 1", "(not " * 600 + "port = 1"):
        with pytest.raises(FilterError, match="more than 64 deep"):
            compile_filter(text)
    assert compile_filter("(" * MAX_DEPTH + "port = 1" + ")" * MAX_DEPTH).params == {"f0": 1, "f1": 1}
    assert "NOT" in compile_filter("not " * MAX_DEPTH + "port = 1").sql
