"""Field-by-field comparison of NetFlow v5/v9 and IPFIX decoding with tshark's dissector (Debian tshark).

The captures of one upstream test case are concatenated (mergecap -a, templates first) so tshark
learns templates the same way; every flow record tshark shows with addresses must come out of
flowscope with the same keys and counters, and no more flows than that.
"""

from __future__ import annotations

import json
import struct
import subprocess
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pytest
from tests.collect import test_netflow_protocol as built
from tests.conftest import require_tool, shared_data

from flowscope import addresses
from flowscope.collect.dispatch import decode_netflow
from flowscope.collect.encoder import IPV4_TEMPLATE, encode, synthetic_columns
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


def flowscope_view(row: dict) -> dict:
    """The compared fields of a flowscope row, named as in ``KEY_FIELDS``."""
    return {
        "src": row["src_addr"] and addresses.format_one(row["src_addr"]),
        "dst": row["dst_addr"] and addresses.format_one(row["dst_addr"]),
        **{k: row[k] for k in ("src_port", "dst_port", "proto", "bytes", "packets", "in_if", "out_if")},
    }


def pcap_of(tmp_path: Path, payloads: list[bytes]) -> Path:
    """Raw export payloads as Ethernet/IPv4/UDP frames to port 2055 (classic pcap)."""
    out = tmp_path / "raw.pcap"
    with open(out, "wb") as handle:
        handle.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for index, payload in enumerate(payloads):
            udp = struct.pack(">HHHH", 40000, 2055, 8 + len(payload), 0)
            ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 28 + len(payload), 0, 0, 64, 17, 0, b"\x7f\0\0\1", b"\x7f\0\0\2")
            frame = bytes(12) + b"\x08\x00" + ip + udp + payload
            handle.write(struct.pack("<IIII", 1_700_000_000, index, len(frame), len(frame)) + frame)
    return out


def untimed_rows(flows: pa.Table) -> list[dict]:
    """Rows as Python dicts without the timestamp columns (tshark's view has no times; nanosecond
    timestamps do not fit Python datetimes)."""
    return flows.drop_columns([f.name for f in flows.schema if pa.types.is_timestamp(f.type)]).to_pylist()


def assert_same_flows(capture: Path) -> None:
    """Every flow tshark shows has a flowscope flow with the same values for the fields tshark shows in it
    (flowscope may know more, e.g. the protocol of softflowd's ICMP templates), and no flow is left over."""
    expected = [e for e in (tshark_view(r) for r in tshark_records(capture)) if e["src"] is not None]
    assert expected, "tshark decoded no flow records"
    state = NetflowState()
    rows = [r for d in iter_export_datagrams([capture], Skips()) for r in untimed_rows(decode_netflow(d, state).flows)]
    unmatched: dict[tuple, list[dict]] = {}
    for row in rows:
        view = flowscope_view(row)
        unmatched.setdefault((view["src"], view["dst"]), []).append(view)
    for record in expected:
        candidates = unmatched.get((record["src"], record["dst"]), [])
        shown = {k: v for k, v in record.items() if v is not None}
        match = next((c for c in candidates if all(c[k] == v for k, v in shown.items())), None)
        assert match is not None, f"no flowscope flow matches tshark's {shown}"
        candidates.remove(match)
    leftover = [v for views in unmatched.values() for v in views]
    assert not leftover, f"flowscope flows tshark does not show: {leftover[:3]}"


RAW_CASES = {
    "goflow2-v5": ("goflow2", ["nfv5_TestDecodeNetFlowV5_data.bin"]),
    "goflow2-v9": ("goflow2", ["nfv9_TestDecodeNetFlowV9_template.bin", "nfv9_TestDecodeNetFlowV9_data.bin"]),
    "python-netflow-v5": ("python-netflow", ["PACKET_V5.bin"]),
    "python-netflow-v9": ("python-netflow", ["PACKET_V9_TEMPLATE.bin", "PACKETS_V9_0.bin", "PACKETS_V9_1.bin"]),
    "python-netflow-ipfix": ("python-netflow", ["PACKET_IPFIX_TEMPLATE.bin", "PACKET_IPFIX.bin"]),
    # carries its own, redefined templates 1024-2049: alone, as tshark keeps the first definition of an id
    "python-netflow-ipfix-padding": ("python-netflow", ["PACKET_IPFIX_PADDING.bin"]),
    "python-netflow-ipfix-ether": ("python-netflow", ["PACKET_IPFIX_TEMPLATE_ETHER.bin", "PACKET_IPFIX_ETHER.bin"]),
}


@pytest.mark.parametrize("case", sorted(RAW_CASES))
def test_raw_payloads_match_tshark(case: str, tmp_path: Path) -> None:
    folder, names = RAW_CASES[case]
    assert_same_flows(pcap_of(tmp_path, [shared_data("raw", folder, name).read_bytes() for name in names]))


@pytest.mark.parametrize("version", [9, 10])
def test_encoded_stream_matches_tshark(version: int, tmp_path: Path) -> None:
    """64-bit counters, AS numbers and 16 fields per record, template every 100 datagrams."""
    payloads = encode(version, IPV4_TEMPLATE, synthetic_columns(3000, seed=version))
    assert_same_flows(pcap_of(tmp_path, payloads))


def test_netflow_v9_variable_length_fields_match_tshark(tmp_path: Path) -> None:
    """NetFlow v9 with 0xFFFF field lengths (H3C NetStream): Wireshark reads IPFIX's variable-length encoding."""
    fields = ((8, 4), (82, 0xFFFF), (12, 4), (1, 4), (2, 4), (7, 2), (11, 2), (4, 1))
    specifiers = b"".join(struct.pack(">HH", *field) for field in fields)
    template_set = built.set_(0, struct.pack(">HH", 300, len(fields)) + specifiers)
    records = b""
    for index, name in enumerate((b"GE1/0/1", b"", b"x" * 300, b"Ten-GigabitEthernet1/0/49")):
        prefix = bytes([len(name)]) if len(name) < 255 else b"\xff" + struct.pack(">H", len(name))
        addresses_ = built.simple_record(f"10.0.{index}.1", f"10.0.{index}.2", 100 + index, 1 + index)
        records += addresses_[:4] + prefix + name + addresses_[4:] + struct.pack(">HHB", 1000 + index, 53, 17)
    data_set = built.set_(300, records, pad=3)
    payloads = [built.v9(template_set, count=1, sequence=0), built.v9(data_set, count=4, sequence=1)]
    assert_same_flows(pcap_of(tmp_path, payloads))


def merged(tmp_path: Path, names: list[str]) -> Path:
    folder = shared_data("netflow", "akvorado")
    out = tmp_path / "merged.pcap"
    mergecap = require_tool("mergecap")
    subprocess.run([mergecap, "-a", "-F", "pcap", "-w", str(out), *(str(folder / n) for n in names)], check=True)
    return out


@pytest.mark.parametrize("case", sorted(CASES))
def test_flows_match_tshark(case: str, tmp_path: Path) -> None:
    assert_same_flows(merged(tmp_path, CASES[case]))


def test_data_before_its_template_in_the_same_message(tmp_path: Path) -> None:
    """tshark (like akvorado) drops the data set that precedes its template in one message; flowscope holds
    it and decodes it once the template, a few sets later, arrives: tshark's flows plus those."""
    capture = merged(tmp_path, ["data+templates.pcap"])
    expected = Counter(
        json.dumps(e, sort_keys=True) for e in (tshark_view(r) for r in tshark_records(capture)) if e["src"] is not None
    )
    state = NetflowState()
    rows = [r for d in iter_export_datagrams([capture], Skips()) for r in untimed_rows(decode_netflow(d, state).flows)]
    got = Counter(json.dumps(flowscope_view(r), sort_keys=True) for r in rows)
    assert got & expected == expected
    assert got.total() == expected.total() + 11
