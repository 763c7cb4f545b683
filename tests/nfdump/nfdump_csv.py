"""Render flow tables the way ``nfdump -o csv`` prints records, to compare field by field."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from flowscope.addresses import format_one

COMPARED = (
    "ts",
    "te",
    "sa",
    "da",
    "sp",
    "dp",
    "pr",
    "stos",
    "ipkt",
    "ibyt",
    "opkt",
    "obyt",
    "in",
    "out",
    "sas",
    "das",
    "nh",
    "svln",
    "ra",
)
_PROTO_NAMES = {1: "ICMP", 6: "TCP", 17: "UDP", 58: "ICMP6", 47: "GRE", 50: "ESP"}


def expected_rows(path: Path) -> list[dict[str, str]]:
    """Record rows of a saved ``nfdump -o csv`` output."""
    return csv_rows(path.read_text())


def csv_rows(text: str) -> list[dict[str, str]]:
    """Record rows of ``nfdump -o csv`` output (the summary section is dropped)."""
    text = text.split("\nSummary\n")[0]
    rows = list(csv.DictReader(line for line in text.splitlines() if line.strip()))
    return [{key: row[key].strip() for key in COMPARED} for row in rows]


def _time(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if value else ""


def _address(value: bytes | None, zero: str = "0.0.0.0") -> str:
    return format_one(value) if value else zero


def our_rows(table: pa.Table) -> list[dict[str, str]]:
    rows = []
    for r in table.to_pylist():
        rows.append(
            {
                "ts": _time(r["time_flow_start"]),
                "te": _time(r["time_flow_end"]),
                "sa": _address(r["src_addr"]),
                "da": _address(r["dst_addr"]),
                "sp": str(r["src_port"]),
                "dp": str(r["dst_port"]),
                "pr": _PROTO_NAMES.get(r["proto"], str(r["proto"])),
                "stos": str(r["ip_tos"]),
                "ipkt": str(r["packets"]),
                "ibyt": str(r["bytes"]),
                "opkt": str(r["packets_rev"] or 0),
                "obyt": str(r["bytes_rev"] or 0),
                "in": str(r.get("in_if") or 0),
                "out": str(r.get("out_if") or 0),
                "sas": str(r.get("src_as") or 0),
                "das": str(r.get("dst_as") or 0),
                "nh": _address(r.get("next_hop")),
                "svln": str(r.get("vlan_id") or 0),
                "ra": _address(r.get("sampler_address")),
            }
        )
    return rows
