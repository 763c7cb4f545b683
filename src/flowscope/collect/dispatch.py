"""One entry point for everything a ``netflow://`` listener receives: v1, v5, v9 and IPFIX told apart by version."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from flowscope import addresses
from flowscope.collect.datagrams import MESSAGE_SCHEMA, Datagrams, Decoded
from flowscope.collect.netflow import IPFIX, V9, decode_templated
from flowscope.collect.netflow_v5 import V1, V5, decode_legacy
from flowscope.collect.state import NetflowState
from flowscope.diagnostics import Skips


def decode_netflow(datagrams: Datagrams, state: NetflowState) -> Decoded:
    """Decode a batch of NetFlow/IPFIX datagrams; other versions are counted and reported, never raised."""
    versions = np.array([int.from_bytes(p[:2], "big") if len(p) >= 2 else 0 for p in datagrams.payloads], np.int64)
    parts = []
    for legacy in (V1, V5):
        chosen = np.flatnonzero(versions == legacy)
        if len(chosen):
            parts.append(decode_legacy(datagrams.take(chosen), state.sampling, legacy))
    templated = np.flatnonzero((versions == V9) | (versions == IPFIX))
    if len(templated):
        parts.append(decode_templated(datagrams.take(templated), state))
    other = np.flatnonzero(~np.isin(versions, (V1, V5, V9, IPFIX)))
    if len(other):
        parts.append(_unknown(datagrams.take(other), versions[other]))
    decoded = Decoded.concat(parts)
    state.save()
    return decoded


def _unknown(datagrams: Datagrams, versions: np.ndarray) -> Decoded:
    skips = Skips(unit="datagrams")
    status = []
    for payload, version in zip(datagrams.payloads, versions.tolist(), strict=True):
        reason = "datagram too short for a version" if len(payload) < 2 else f"unknown NetFlow version {version}"
        status.append(reason)
        skips.add(reason, example=f"{len(payload)} bytes")
    n = len(datagrams)
    messages = pa.table(
        {
            "exporter": addresses.from_ipv6_bytes(datagrams.exporters),
            "version": pa.array(versions.astype(np.uint16)),
            "domain": pa.array(np.zeros(n, np.uint32)),
            "sequence": pa.array(np.zeros(n, np.uint64)),
            "records": pa.array(np.zeros(n, np.uint32)),
            "received_ns": pa.array(datagrams.received_ns),
            "status": pa.array(status, pa.string()),
        },
        schema=MESSAGE_SCHEMA,
    )
    return Decoded(messages=messages, skips=skips)
