"""Crypto-PAn rate: flowscope's ``--anonymize`` transform vs a per-address Crypto-PAn, on the same flows.

    python benchmarks/bench_anonymize.py [--flows 2000000] [--peer-flows 20000]

Flows: ``flowscope.demo.traffic`` (20 k clients, 200 k Zipf-popular servers, a fifth IPv6). flowscope:
``Anonymizer`` on 500 k-flow batches (every address column: exporter, source, destination, next hop), after
one warm-up batch. The peer anonymises the source and destination of each flow the way the reference
implementation does, one address at a time: one AES call (``cryptography``, the same AES-NI code) per bit
of the address, 32 for IPv4, 128 for IPv6. CPU seconds, so rates are per core.
"""

from __future__ import annotations

import argparse
import ipaddress
import time

from common import as_installed, machine, measure_in_subprocess, print_comparison

BATCH = 500_000
KEY = bytes(range(32))


def _tables(flows: int) -> list:  # type: ignore[type-arg]
    from flowscope.demo.traffic import synthetic_flows

    return list(synthetic_flows(flows, hosts=20_000, servers=200_000, batch_rows=BATCH))


def flowscope_step(flows: str) -> tuple[float, int]:
    as_installed()
    from flowscope.transforms.anonymize import Anonymizer

    tables = _tables(int(flows))
    anonymizer = Anonymizer(KEY)
    anonymizer(tables[0])  # warm-up
    started = time.process_time()
    rows = sum(anonymizer(table).num_rows for table in tables)
    return time.process_time() - started, rows


def peer_step(flows: str) -> tuple[float, int]:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    table = _tables(int(flows))[0].slice(0, int(flows))
    cipher = Cipher(algorithms.AES(KEY[:16]), modes.ECB())
    encryptor = cipher.encryptor()
    pad = int.from_bytes(encryptor.update(KEY[16:]))

    def anonymize(value: int, bits: int) -> int:
        pad_bits = pad >> (128 - bits) if bits == 32 else pad
        rest = pad & ((1 << (128 - bits)) - 1)
        otp = 0
        for position in range(bits):
            keep = ((1 << position) - 1) << (bits - position)
            block = ((value & keep) | (pad_bits & ~keep & ((1 << bits) - 1))) << (128 - bits) | rest
            otp |= (encryptor.update(block.to_bytes(16))[0] >> 7) << (bits - 1 - position)
        return value ^ otp

    def one(raw: bytes) -> bytes:
        address = ipaddress.IPv6Address(raw)
        if address.ipv4_mapped is not None:
            return raw[:12] + anonymize(int(address.ipv4_mapped), 32).to_bytes(4)
        return anonymize(int(address), 128).to_bytes(16)

    pairs = list(zip(table.column("src_addr").to_pylist(), table.column("dst_addr").to_pylist(), strict=True))
    started = time.process_time()
    for src, dst in pairs:
        one(src), one(dst)
    return time.process_time() - started, len(pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flows", type=int, default=2_000_000)
    parser.add_argument("--peer-flows", type=int, default=20_000)
    args = parser.parse_args()
    print(f"machine: {machine()}; times are CPU seconds (rates per core)")
    ours = measure_in_subprocess("flowscope --anonymize", "bench_anonymize", "flowscope_step", str(args.flows))
    peer = measure_in_subprocess("per-address Crypto-PAn", "bench_anonymize", "peer_step", str(args.peer_flows))
    print_comparison("Crypto-PAn anonymisation of flows", "flows", ours, peer)


if __name__ == "__main__":
    main()
