"""Elasticsearch as a destination: ``elasticsearch://HOST:9200/INDEX[?batch_docs=N&retry_seconds=R]``.

pcapstream's search role: flows are bulk-indexed (official ``elasticsearch`` client, < 9 for Elasticsearch
8 servers) into one index per UTC day under an index template rendered from the catalogue
(``flowscope.db.elasticsearch``). Documents are buffered and sent every ``batch_docs`` (default 20 000) and
at every flush.

Nothing is lost silently. The bulk response is read item by item: items the server refused for now (429
too many requests, 5xx) are sent again, alone, with doubling pauses (0.2 s up to 5 s) for up to
``retry_seconds`` (default 60); a request that fails on the network is sent again whole the same way.
Items refused for good (a 4xx such as a mapping conflict) and items still refused when the time is up
fail the run with one error that counts them and quotes the first reason. Documents have no id, so a bulk
request whose answer was lost and that is sent again indexes its documents twice (at most one batch).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flowscope.db import elasticsearch as es
from flowscope.errors import FlowscopeError
from flowscope.pipeline import Checkpoint
from flowscope.schema import TIMESTAMP
from flowscope.sinks.held import HeldFlows
from flowscope.sinks.parameters import positive
from flowscope.sinks.registry import Destination, DestinationContext, register

_FIRST_PAUSE = 0.2
_LONGEST_PAUSE = 5.0
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


class ElasticsearchSink:
    """Bulk-indexes flows into daily indices (see the module docstring for the guarantees)."""

    def __init__(self, url: str, client: Any = None) -> None:
        self.url = es.ElasticsearchURL.parse(url)
        unknown = set(self.url.params) - {"batch_docs", "retry_seconds"}
        if unknown:
            raise FlowscopeError(f"unknown Elasticsearch URL parameter(s): {', '.join(sorted(unknown))}")
        self.batch_docs = positive(self.url.params, "batch_docs", 20_000, server="Elasticsearch", kind=int)
        self.retry_seconds = positive(self.url.params, "retry_seconds", 60.0, server="Elasticsearch", kind=float)
        self.name = f"elasticsearch {self.url.endpoint}/{self.url.index}"
        self.client = client if client is not None else self._connect()
        self.held = HeldFlows()
        self.indexed = 0
        self.requests = 0
        self.retried_items = 0

    def _connect(self) -> Any:
        try:
            from elasticsearch import Elasticsearch
            from elasticsearch import exceptions as errors
        except ImportError:
            needs = "pip install 'flowscope[elasticsearch]'"
            raise FlowscopeError(f"the Elasticsearch destination needs the official client: {needs}") from None

        auth = (self.url.user, self.url.password or "") if self.url.user else None
        client = Elasticsearch(self.url.endpoint, basic_auth=auth, request_timeout=120, max_retries=0)
        try:
            client.indices.put_index_template(name=f"flowscope-{self.url.index}", **es.template(self.url.index))
        except errors.AuthenticationException:
            raise FlowscopeError(f"Elasticsearch at {self.url.endpoint} refused the login") from None
        except errors.ConnectionError as exc:
            raise FlowscopeError(f"cannot reach Elasticsearch at {self.url.endpoint}: {exc.message}") from None
        except errors.ApiError as exc:
            raise FlowscopeError(f"Elasticsearch at {self.url.endpoint}: {exc.message}") from None
        return client

    def write(self, batch: pa.Table) -> None:
        if self.held.add(batch) and self.held.rows >= self.batch_docs:
            self._send()

    def flush(self, checkpoint: Checkpoint | None = None) -> None:
        self._send()

    def close(self) -> None:
        try:
            self._send()
        finally:
            self.client.close()

    def abort(self) -> None:
        self.held.clear()
        self.client.close()

    def kept(self) -> list[str]:
        """After an abort: the documents indexed (bulk requests are not undone)."""
        return [f"{self.name} keeps the {self.indexed:,} flows indexed before"]

    def notes(self) -> list[str]:
        notes = [f"{self.name}: {self.indexed:,} flows in {self.requests:,} bulk requests"]
        if self.retried_items:
            notes.append(f"{self.name}: {self.retried_items:,} documents refused for a while and sent again")
        notes += self.held.notes(self.name, "Elasticsearch")
        return notes

    def _send(self) -> None:
        if not self.held.rows:
            return
        table = self.held.joined()
        received = table.column("time_received")
        if received.null_count:  # the daily index comes from it: a record without one gets the time it was stored
            received = pc.fill_null(received, pa.scalar(time.time_ns(), TIMESTAMP))
            table = table.set_column(table.schema.get_field_index("time_received"), "time_received", received)
        pending = es.bulk_lines(table, self.url.index)
        started = time.monotonic()
        pause = _FIRST_PAUSE
        while True:
            retry, refused = self._bulk(pending)
            if refused:
                raise FlowscopeError(f"{self.name}: {refused[0]:,} documents refused: {refused[1]}")
            if not len(retry):
                break
            if time.monotonic() - started + pause > self.retry_seconds:
                raise FlowscopeError(
                    f"{self.name}: {len(retry):,} documents still refused after {self.retry_seconds:g} s"
                )
            self.retried_items += len(retry)
            time.sleep(pause)
            pause = min(2 * pause, _LONGEST_PAUSE)
            pending = retry
        self.indexed += self.held.rows
        self.held.clear()

    def _bulk(self, lines: pa.Array) -> tuple[pa.Array, tuple[int, str] | None]:
        """Send ``lines``; returns (the lines to send again, (count, first reason) of those refused for good)."""
        from elasticsearch import exceptions as errors

        try:
            response = self.client.bulk(operations=es.body(lines))
        except (errors.ConnectionError, errors.ConnectionTimeout):
            return lines, None
        except errors.ApiError as exc:
            if exc.meta.status in _RETRY_STATUS:
                return lines, None
            raise FlowscopeError(f"{self.name}: {exc.message}") from None
        self.requests += 1
        if not response.get("errors"):
            return lines.slice(0, 0), None
        items = response["items"]
        status = np.array([next(iter(item.values())).get("status", 500) for item in items])
        # One status per document: a Python step per item, taken only when the server refused some.
        again = np.isin(status, list(_RETRY_STATUS))
        failed = (status >= 300) & ~again
        if failed.any():
            first = next(iter(items[int(np.flatnonzero(failed)[0])].values())).get("error", {})
            reason = first.get("reason") if isinstance(first, dict) else str(first)
            return lines.slice(0, 0), (int(failed.sum()), str(reason))
        return lines.take(pa.array(np.flatnonzero(again))), None


def _open(url: str, context: DestinationContext) -> ElasticsearchSink:
    return ElasticsearchSink(url)


register(
    Destination(
        "elasticsearch",
        "elasticsearch://HOST:9200/INDEX: one index per day under a template from the catalogue",
        lambda url: url.startswith((f"{es.SCHEME}://", f"{es.SCHEME}s://")),
        _open,
    )
)
