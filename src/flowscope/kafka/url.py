"""``kafka://HOST:PORT[,HOST:PORT...]/TOPIC[?format=...&key=...&per_message=N]``: one topic on a cluster.

The same URL names a destination (``--to``) and a source (``flowscope consume``). ``format`` is how flows
are carried (``flowscope.kafka.formats``); ``key`` the column messages are keyed (partitioned) by,
``none`` for no key; ``per_message`` how many flows at most one Kafka message carries.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from flowscope.errors import FlowscopeError
from flowscope.schema import FLOW_COLUMNS

SCHEME = "kafka://"
DEFAULT_KEY = "sampler_address"
"""Keyed by exporter: one exporter's flows stay in order in one partition."""


@dataclass(frozen=True)
class KafkaUrl:
    bootstrap: str
    topic: str
    format: str = "goflow2"
    key: str | None = DEFAULT_KEY
    per_message: int | None = None
    """None: the format's default."""

    @property
    def text(self) -> str:
        return f"{SCHEME}{self.bootstrap}/{self.topic}"


def is_kafka(url: str) -> bool:
    return url.startswith(SCHEME)


def parse(url: str) -> KafkaUrl:
    from flowscope.kafka.formats import FORMATS

    parts = urlsplit(url)
    topic = parts.path.strip("/")
    if not parts.netloc or not topic or "/" in topic:
        raise FlowscopeError(f"{url}: a Kafka URL is kafka://HOST:PORT/TOPIC")
    query = {name: values[-1] for name, values in parse_qs(parts.query, keep_blank_values=True).items()}
    unknown = set(query) - {"format", "key", "per_message"}
    if unknown:
        raise FlowscopeError(f"{url}: unknown option(s) {', '.join(sorted(unknown))} (known: format, key, per_message)")
    fmt = query.get("format", "goflow2")
    if fmt not in FORMATS:
        raise FlowscopeError(f"{url}: unknown format {fmt!r} (known: {', '.join(FORMATS)})")
    key: str | None = query.get("key", DEFAULT_KEY)
    if key in ("", "none"):
        key = None
    elif key not in FLOW_COLUMNS:
        raise FlowscopeError(f"{url}: key {key!r} is not a flow column")
    per_message = None
    if "per_message" in query:
        try:
            per_message = int(query["per_message"])
        except ValueError:
            per_message = 0
        if per_message < 1:
            raise FlowscopeError(f"{url}: per_message must be a positive number of flows")
    return KafkaUrl(parts.netloc, topic, fmt, key, per_message)
