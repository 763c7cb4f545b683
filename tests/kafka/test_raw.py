"""Raw datagram messages (``collect --raw-to`` / ``consume --raw``): packing, unpacking, decoding."""

from __future__ import annotations

import numpy as np
import pyarrow.compute as pc

from flowscope.collect.datagrams import Datagrams
from flowscope.collect.encoder import IPFIX, IPV4_TEMPLATE, encode, synthetic_columns
from flowscope.diagnostics import Skips
from flowscope.kafka.raw import RawDecoder, pack, unpack


def _exporter(last: int) -> np.ndarray:
    return np.array([0] * 10 + [0xFF, 0xFF, 192, 0, 2, last], np.uint8)


def test_one_message_per_exporter_and_back() -> None:
    payloads = [b"a", b"bb", b"", b"dddd"]
    exporters = np.stack([_exporter(1), _exporter(2), _exporter(1), _exporter(1)])
    datagrams = Datagrams(payloads, exporters, np.array([1, 2, 3, -4], np.int64))
    values, keys, counts = pack("netflow", datagrams)
    assert sorted(zip(keys, counts, strict=True)) == [(b"192.0.2.1", 3), (b"192.0.2.2", 1)]
    skips = Skips()
    back = unpack([*values, b"garbage", values[0][:-2]], skips).by_protocol["netflow"]
    assert dict(skips.counts) == {"not a raw datagram message": 1, "raw datagram record cut short": 1}
    first = {p: (e[-1], t) for p, e, t in zip(back.payloads[:4], back.exporters[:4], back.received_ns[:4], strict=True)}
    assert first == {b"a": (1, 1), b"": (1, 3), b"dddd": (1, -4), b"bb": (2, 2)}


def test_raw_messages_decode_as_the_collector_decodes(tmp_path) -> None:
    payloads = encode(IPFIX, IPV4_TEMPLATE, synthetic_columns(480))
    datagrams = Datagrams(payloads, np.stack([_exporter(9)] * len(payloads)), np.zeros(len(payloads), np.int64))
    values, _, _ = pack("netflow", datagrams)
    decoder = RawDecoder(str(tmp_path))
    tables = decoder(values, Skips())
    assert sum(t.num_rows for t in tables) == 480
    assert pc.sum(tables[0].column("packets")).as_py() == int(synthetic_columns(480)[2].sum())
    decoder.save()
    assert (tmp_path / "_collector" / "templates.json").exists()


def test_raw_decoding_accounts_exporter_health_as_the_collector(tmp_path) -> None:
    """Datagrams, flows, sequence loss and templates per exporter, saved for ``flowscope exporters``."""
    from flowscope.collect.server import lake_health
    from flowscope.lake.layout import Lake

    payloads = encode(IPFIX, IPV4_TEMPLATE, synthetic_columns(480))
    lost = payloads[:3] + payloads[4:]  # one data datagram never arrives: its records are missing
    datagrams = Datagrams(lost, np.stack([_exporter(9)] * len(lost)), np.arange(len(lost), dtype=np.int64))
    values, _, _ = pack("netflow", datagrams)
    decoder = RawDecoder(str(tmp_path), "consume-test", "run-1")
    decoder([*values, b"garbage"], Skips())
    decoder.save()
    health = lake_health(Lake.at(tmp_path))
    (exporter,) = health["exporters"]
    assert exporter["exporter"] == "192.0.2.9" and exporter["protocol"] == "netflow"
    assert exporter["datagrams"] == len(lost)
    assert exporter["flows"] == 480 - 24  # 24 records per datagram
    assert dict(exporter["lost"]) == {"flows": 24}  # IPFIX numbers flows
    assert health["templates"]["known"] == 1
