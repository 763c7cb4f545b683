"""One entry point for everything a ``netflow://`` listener receives: v1, v5, v9 and IPFIX told apart by version."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from flowscope import addresses
from flowscope.collect.datagrams import MESSAGE_SCHEMA, Datagrams, Decoded
from flowscope.collect.fields import IPFIX, V9
from flowscope.collect.netflow import decode_templated
from flowscope.collect.netflow_v5 import V1, V5, decode_legacy
from flowscope.collect.simple import leading_versions
from flowscope.collect.state import NetflowState
from flowscope.diagnostics import Skips


def decode_netflow(datagrams: Datagrams, state: NetflowState) -> Decoded:
    """Decode a batch of NetFlow/IPFIX datagrams; other versions are counted and reported, never raised.

    Message rows come back in datagram order whichever decoder handled each datagram.
    """
    versions = leading_versions(datagrams.payloads)
    parts, order = [], []
    for legacy in (V1, V5):
        chosen = np.flatnonzero(versions == legacy)
        if len(chosen):
            parts.append(decode_legacy(_subset(datagrams, chosen), state.sampling, legacy))
            order.append(chosen)
    templated = np.flatnonzero((versions == V9) | (versions == IPFIX))
    if len(templated):
        parts.append(decode_templated(_subset(datagrams, templated), state))
        order.append(templated)
    other = np.flatnonzero(~np.isin(versions, (V1, V5, V9, IPFIX)))
    if len(other):
        parts.append(_unknown(_subset(datagrams, other), versions[other]))
        order.append(other)
    decoded = Decoded.concat(parts)
    if len(parts) > 1:
        decoded.messages = decoded.messages.take(np.argsort(np.concatenate(order), kind="stable"))
    state.save()
    return decoded


def _subset(datagrams: Datagrams, rows: np.ndarray) -> Datagrams:
    return datagrams if len(rows) == len(datagrams) else datagrams.take(rows)


def _unknown(datagrams: Datagrams, versions: np.ndarray) -> Decoded:
    skips = Skips(unit="items")
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
            "flows": pa.array(np.zeros(n, np.uint32)),
            "received_ns": pa.array(datagrams.received_ns),
            "status": pa.array(status, pa.string()),
        },
        schema=MESSAGE_SCHEMA,
    )
    return Decoded(messages=messages, skips=skips)
