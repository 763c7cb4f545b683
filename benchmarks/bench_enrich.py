"""Enrichment rate: flowscope's ``--enrich`` transform vs per-flow ``maxminddb`` lookups, on the same flows.

    python benchmarks/bench_enrich.py [--flows 5000000] [--peer-flows 300000]

Builds (once, cached in the temp directory) an ASN and a country MMDB with the ``mmdb-writer`` package
(IPv6 databases with the IPv4 part, like GeoLite2: 250 k IPv4 and 40 k IPv6 networks over 60 k AS
numbers; 120 k networks over 250 countries), a networks file of 10 k prefixes (nested /8 to /28 and
IPv6), and synthetic flows with realistic address cardinality (``flowscope.demo.traffic``: 20 k clients,
200 k Zipf-popular servers, a fifth IPv6; AS numbers 0, so they are filled). Then measures, each in its
own process and in CPU seconds (rates per core on a shared machine):

- flowscope: ``Enricher`` (ASN + country + networks file) over 500 k-flow batches held in memory, after
  loading the databases (not timed: once per process, ~2.3 CPU s for these two) and one warm-up batch;
- the peer: per flow, ``reader.get`` of source and destination in both databases and the AS fill, with
  the addresses already ``ipaddress`` objects (their conversion is not counted for the peer);
- lookups alone: 1 M distinct random addresses through the range table vs ``reader.get``.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from common import as_installed, machine, measure_in_subprocess, print_comparison

CACHE = Path(tempfile.gettempdir()) / "flowscope-bench-enrich-v1"
BATCH = 500_000


def _write_database(path: Path, kind: str, seed: int) -> None:
    from mmdb_writer import MMDBWriter
    from netaddr import IPNetwork, IPSet

    rng = np.random.default_rng(seed)
    writer = MMDBWriter(ip_version=6, database_type=f"Bench-{kind}", ipv4_compatible=True)
    v4_count, v6_count = (250_000, 40_000) if kind == "ASN" else (100_000, 20_000)
    # disjoint IPv4 prefixes: random /16 to /24 blocks aligned inside distinct /16s and /24s
    blocks = np.unique(rng.integers(0, 1 << 24, v4_count))
    countries = [f"{chr(65 + i // 26)}{chr(65 + i % 26)}" for i in range(250)]
    for number, block in enumerate(blocks):
        cidr = f"{block >> 16}.{(block >> 8) & 255}.{block & 255}.0/24"
        writer.insert_network(IPSet([IPNetwork(cidr)]), _record(kind, number, countries))
    for number, block in enumerate(np.unique(rng.integers(0, 1 << 28, v6_count))):
        cidr = f"2{(block >> 16) & 0xFFF:03x}:{block & 0xFFFF:04x}::/32"
        writer.insert_network(IPSet([IPNetwork(cidr)]), _record(kind, number + len(blocks), countries))
    writer.to_db_file(str(path))


def _record(kind: str, number: int, countries: list[str]) -> dict[str, object]:
    if kind == "ASN":
        asn = 1 + number % 60_000
        return {"autonomous_system_number": asn, "autonomous_system_organization": f"Organisation {asn}"}
    return {"country": {"iso_code": countries[number % len(countries)]}}


def _write_networks(path: Path) -> None:
    rng = np.random.default_rng(3)
    rows: dict[str, str] = {}
    while len(rows) < 10_000:
        value, length = int(rng.integers(0, 1 << 32)), int(rng.choice([8, 12, 16, 20, 24, 28, 32]))
        if rng.random() < 0.15:
            rows[f"2a00:{value >> 16:x}::/32"] = f"v6-{value},role-v6,site-{value % 40}"
        else:
            network = ipaddress.ip_network((value >> (32 - length) << (32 - length), length))
            rows[str(network)] = f"net-{network.network_address},role-{length},site-{value % 40}"
    path.write_text("cidr,name,role,site\n" + "".join(f"{cidr},{rest}\n" for cidr, rest in rows.items()))


def prepare(flows: int) -> Path:
    """The databases, the networks file, the configuration and the flows (Parquet), built once."""
    CACHE.mkdir(exist_ok=True)
    for kind, seed in (("ASN", 1), ("Country", 2)):
        if not (CACHE / f"{kind}.mmdb").exists():
            print(f"building the {kind} database with mmdb-writer (once)...", flush=True)
            _write_database(CACHE / f"{kind}.mmdb.tmp", kind, seed)
            os.replace(CACHE / f"{kind}.mmdb.tmp", CACHE / f"{kind}.mmdb")
    _write_networks(CACHE / "networks.csv")
    (CACHE / "enrich.toml").write_text(
        '[geoip]\nasn = "ASN.mmdb"\ncountry = "Country.mmdb"\n[networks]\nfile = "networks.csv"\n'
    )
    flows_path = CACHE / f"flows-{flows}.parquet"
    if not flows_path.exists():
        import pyarrow as pa
        import pyarrow.parquet as pq

        from flowscope.demo.traffic import synthetic_flows

        zero = pa.array(np.zeros(BATCH, np.uint32))
        with pq.ParquetWriter(flows_path, synthetic_flows(1, batch_rows=1).__next__().schema) as writer:
            for table in synthetic_flows(flows, hosts=20_000, servers=200_000, batch_rows=BATCH):
                table = table.set_column(table.schema.get_field_index("src_as"), "src_as", zero[: table.num_rows])
                table = table.set_column(table.schema.get_field_index("dst_as"), "dst_as", zero[: table.num_rows])
                writer.write_table(table)
    return flows_path


def flowscope_step(flows_path: str) -> tuple[float, int]:
    as_installed()
    import pyarrow.parquet as pq

    from flowscope.transforms.enrich import Enricher

    batches = [batch for batch in pq.ParquetFile(flows_path).iter_batches(BATCH)]
    tables = [pa_table(batch) for batch in batches]
    enricher = Enricher.from_file(CACHE / "enrich.toml")
    enricher(tables[0])  # warm-up
    started = time.process_time()
    rows = sum(enricher(table).num_rows for table in tables)
    return time.process_time() - started, rows


def pa_table(batch):  # type: ignore[no-untyped-def]
    import pyarrow as pa

    return pa.Table.from_batches([batch])


def peer_step(flows_path: str, count: str) -> tuple[float, int]:
    import maxminddb
    import pyarrow.parquet as pq

    table = pq.read_table(flows_path, columns=["src_addr", "dst_addr", "src_as", "dst_as"]).slice(0, int(count))

    def address(value: bytes) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        parsed = ipaddress.IPv6Address(value)
        return parsed.ipv4_mapped or parsed

    sources = [address(v) for v in table.column("src_addr").to_pylist()]
    destinations = [address(v) for v in table.column("dst_addr").to_pylist()]
    given = list(zip(table.column("src_as").to_pylist(), table.column("dst_as").to_pylist(), strict=True))
    asn_db = maxminddb.open_database(str(CACHE / "ASN.mmdb"))
    country_db = maxminddb.open_database(str(CACHE / "Country.mmdb"))
    started = time.process_time()
    out = []
    for src, dst, (src_as, dst_as) in zip(sources, destinations, given, strict=True):
        row = []
        for addr, known in ((src, src_as), (dst, dst_as)):
            asn = asn_db.get(addr)
            country = country_db.get(addr)
            number = asn.get("autonomous_system_number") if isinstance(asn, dict) else None
            row += [
                number if not known and number else known,
                asn.get("autonomous_system_organization") if isinstance(asn, dict) else None,
                country["country"]["iso_code"] if isinstance(country, dict) else None,
            ]
        out.append(row)
    return time.process_time() - started, len(out)


def _random_distinct(count: int) -> np.ndarray:
    rng = np.random.default_rng(11)
    matrix = rng.integers(0, 256, (count, 16), dtype=np.uint8)
    matrix[: count * 4 // 5, :12] = [0] * 10 + [0xFF, 0xFF]  # four in five IPv4
    matrix[count * 4 // 5 :, :2] = [0x2A, 0x00]
    return matrix


def table_lookup_step(count: str) -> tuple[float, int]:
    from flowscope.transforms.enrich.mmdb import MmdbTable

    table = MmdbTable.load(CACHE / "ASN.mmdb")
    matrix = _random_distinct(int(count))
    started = time.process_time()
    table.lookup(matrix)
    return time.process_time() - started, len(matrix)


def reader_lookup_step(count: str) -> tuple[float, int]:
    import maxminddb

    matrix = _random_distinct(int(count))
    addresses = [ipaddress.IPv6Address(row.tobytes()) for row in matrix]
    addresses = [a.ipv4_mapped or a for a in addresses]
    reader = maxminddb.open_database(str(CACHE / "ASN.mmdb"))
    started = time.process_time()
    for a in addresses:
        reader.get(a)
    return time.process_time() - started, len(addresses)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flows", type=int, default=5_000_000)
    parser.add_argument("--peer-flows", type=int, default=300_000, help="flows the per-flow peer enriches")
    parser.add_argument("--lookups", type=int, default=1_000_000, help="distinct addresses for the lookup-only step")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    print(f"machine: {machine()}; {args.flows:,} flows; times are CPU seconds (rates per core)")
    flows_path = prepare(args.flows)
    ours = measure_in_subprocess("flowscope --enrich", "bench_enrich", "flowscope_step", str(flows_path))
    peer = measure_in_subprocess(
        "per-flow maxminddb", "bench_enrich", "peer_step", str(flows_path), str(args.peer_flows)
    )
    print_comparison("enrichment: ASN + country MMDB, 10 k-prefix networks file", "flows", ours, peer)
    table = measure_in_subprocess("range table searchsorted", "bench_enrich", "table_lookup_step", str(args.lookups))
    reader = measure_in_subprocess("maxminddb reader.get", "bench_enrich", "reader_lookup_step", str(args.lookups))
    print_comparison("lookups of distinct addresses in the ASN database", "lookups", table, reader)


if __name__ == "__main__":
    main()
