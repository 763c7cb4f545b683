"""Field-by-field comparison of NetFlow v5/v9 and IPFIX decoding with tshark's dissector (Debian tshark).

The captures of one upstream test case are concatenated (mergecap -a, templates first) so tshark
learns templates the same way; every flow record tshark shows with addresses must come out of
flowscope with the same keys and counters, and no more flows than that.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from tests.conftest import require_tool, shared_data

from flowscope import addresses
from flowscope.collect.dispatch import decode_netflow
from flowscope.collect.exports import iter_export_datagrams
from flowscope.collect.state import NetflowState
from flowscope.diagnostics import Skips

pytestmark = pytest.mark.integration

CASES = {
    "v9-options-sampling": ["options-template.pcap", "options-data.pcap", "template.pcap", "data.pcap"],
    "v9-sampling-rate": ["samplingrate-template.pcap", "samplingrate-data.pcap"],
    "v9-multiple-rates": [
        "multiplesamplingrates-options-template.pcap",
        "multiplesamplingrates-options-data.pcap",
        "multiplesamplingrates-template.pcap",
        "multiplesamplingrates-data.pcap",
    ],
    "v9-icmp": ["icmp-template.pcap", "icmp-data.pcap"],
    "v9-nat": ["nat.pcap"],
    "v5": ["nfv5.pcap"],
    "ipfix-mpls": ["mpls.pcap"],
    "ipfix-physical-interfaces": ["physicalinterfaces.pcap"],
    "ipfix-biflows": ["ipfixprobe-templates.pcap", "ipfixprobe-data.pcap"],
    "scapy-ipfix": ["../scapy/ipfix.pcap"],
    "scapy-v9": ["../scapy/netflowv9.pcap"],
}

KEY_FIELDS = (
    ("src", ("cflow.srcaddr", "cflow.srcaddrv6")),
    ("dst", ("cflow.dstaddr", "cflow.dstaddrv6")),
    ("src_port", ("cflow.srcport",)),
    ("dst_port", ("cflow.dstport",)),
    ("proto", ("cflow.protocol",)),
    ("bytes", ("cflow.octets", "cflow.octets64")),
    ("packets", ("cflow.packets", "cflow.packets64")),
    ("in_if", ("cflow.inputint",)),
    ("out_if", ("cflow.outputint",)),
)


def first_wins(pairs: list[tuple[str, object]]) -> dict:
    """tshark repeats keys (e.g. RFC 5103 reverse counters are also ``cflow.octets``): keep the forward one."""
    out: dict = {}
    for key, value in pairs:
        out.setdefault(key, value)
    return out


def tshark_records(capture: Path) -> list[dict]:
    tshark = require_tool("tshark")
    ports = subprocess.run(
        [tshark, "-r", str(capture), "-T", "fields", "-e", "udp.dstport"], capture_output=True, text=True, check=True
    ).stdout.split()
    decode_as = [arg for port in sorted(set(ports)) for arg in ("-d", f"udp.port=={port},cflow")]
    output = subprocess.run(
        [tshark, "-r", str(capture), *decode_as, "-T", "json"], capture_output=True, text=True, check=True
    ).stdout
    records: list[dict] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key.startswith(("Flow ", "pdu ")) and isinstance(value, dict):  # v9/IPFIX, v5
                    records.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(json.loads(output, object_pairs_hook=first_wins))
    return records


def tshark_view(record: dict) -> dict:
    view = {}
    for name, keys in KEY_FIELDS:
        value = next((record[k] for k in keys if k in record), None)
        if value is not None and name not in ("src", "dst"):
            value = int(value, 0)
        view[name] = value
    return view


def flowscope_view(row: dict, present: dict) -> dict:
    """The same fields from a flowscope row, only those tshark showed (others are None)."""
    values = {
        "src": row["src_addr"] and addresses.format_one(row["src_addr"]),
        "dst": row["dst_addr"] and addresses.format_one(row["dst_addr"]),
        **{k: row[k] for k in ("src_port", "dst_port", "proto", "bytes", "packets", "in_if", "out_if")},
    }
    return {k: (values[k] if present[k] is not None else None) for k in values}


def merged(tmp_path: Path, names: list[str]) -> Path:
    folder = shared_data("netflow", "akvorado")
    out = tmp_path / "merged.pcap"
    mergecap = require_tool("mergecap")
    subprocess.run([mergecap, "-a", "-F", "pcap", "-w", str(out), *(str(folder / n) for n in names)], check=True)
    return out


@pytest.mark.parametrize("case", sorted(CASES))
def test_flows_match_tshark(case: str, tmp_path: Path) -> None:
    capture = merged(tmp_path, CASES[case])
    expected = [tshark_view(r) for r in tshark_records(capture)]
    expected = [e for e in expected if e["src"] is not None]
    assert expected, "tshark decoded no flow records"
    skips = Skips()
    state = NetflowState()
    rows = [
        row
        for datagrams in iter_export_datagrams([capture], skips)
        for row in decode_netflow(datagrams, state).flows.to_pylist()
    ]
    present = {name: next((e[name] for e in expected if e[name] is not None), None) for name, _ in KEY_FIELDS}
    got = Counter(json.dumps(flowscope_view(r, present), sort_keys=True) for r in rows)
    want = Counter(
        json.dumps({k: e[k] if present[k] is not None else None for k in e}, sort_keys=True) for e in expected
    )
    assert got == want


def test_data_before_its_template_in_the_same_message(tmp_path: Path) -> None:
    """tshark (like akvorado) drops the data set that precedes its template in one message; flowscope holds
    it and decodes it once the template, a few sets later, arrives: tshark's flows plus those."""
    capture = merged(tmp_path, ["data+templates.pcap"])
    expected = Counter(
        json.dumps(e, sort_keys=True) for e in (tshark_view(r) for r in tshark_records(capture)) if e["src"] is not None
    )
    state = NetflowState()
    rows = [r for d in iter_export_datagrams([capture], Skips()) for r in decode_netflow(d, state).flows.to_pylist()]
    present = {name: name for name, _ in KEY_FIELDS}
    got = Counter(json.dumps(flowscope_view(r, present), sort_keys=True) for r in rows)
    assert got & expected == expected
    assert got.total() == expected.total() + 11
