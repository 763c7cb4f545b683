"""The websocket at ``/api/ingest/csv``: CSV lines streamed into the lake as ``flowscope read - [--reduce NAME]``
streams standard input (``flowscope serve --ingest`` turns it on).

    gzip -cd network-flows.csv.gz | websocat ws://127.0.0.1:8080/api/ingest/csv?reduce=pairs

A text message is one line or several whole lines (as ``websocat`` sends a line per message, without its
newline); binary messages are a byte stream whose lines may be split across messages. The first line is the
CSV header. Like a live standard input, the feed is cut into batches every
``TextOptions.commit_rows`` rows or ``commit_seconds`` seconds, whichever comes first, also while the sender is
idle. Each batch is parsed by the CSV reader itself (the header, then the batch's lines, as a small file:
the reader takes files or the process's standard input, not a byte stream) and handed to a
``pipeline.Stream`` on the lake's destination, which publishes it: a stream, so no ledger, and a closed or
broken connection loses nothing that was cut before it.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pyarrow as pa
from fastapi import WebSocket
from starlette.concurrency import run_in_threadpool

from flowscope.csvflows.reader import open_source
from flowscope.errors import FlowscopeError
from flowscope.lake.layout import Lake
from flowscope.lake.writer import LakeLimits
from flowscope.pipeline import Stream, Transform
from flowscope.readers.options import ReadOptions
from flowscope.readers.text_options import lake_limits
from flowscope.sinks.registry import DestinationContext, open_destination

log = logging.getLogger(__name__)

GATHER = 1024
"""Text messages collected as Python strings before they are joined and added in one step: the receive loop
does no more per message than keep the string (``add`` per message was ~1.2 us of the ~9 us of server CPU
a websocat line cost, issue 14's benchmark)."""


class CsvFeed:
    """One connection's lines, cut into batches and written to the lake through a ``Stream``."""

    def __init__(self, lake: Lake, options: ReadOptions, folder: Path, transforms: Sequence[Transform] = ()) -> None:
        self.options = options
        self.folder = folder
        limits = LakeLimits(**lake_limits(options.text, ["-"]))  # each batch committed as it arrives
        sink = open_destination("lake", DestinationContext(lake, limits, transactional=False))
        steps = [*options.transforms(), *transforms]
        self.stream = Stream(sink, steps, flush_seconds=options.text.commit_seconds)
        self.header: bytes | None = None
        self.partial = b""  # an incomplete last line (binary messages)
        self.body = bytearray()  # complete lines of the batch, as received: no object per line
        self.rows = 0
        self.started = time.monotonic()
        self.texts: list[str] = []  # text messages not added yet (``gather``); the list is kept, emptied in place
        self.texts_since = 0.0  # when the first of them arrived

    def gather(self) -> None:
        """Add the collected text messages (each one line or several whole lines) as one piece."""
        if self.texts:
            fresh = not self.rows
            self.add("\n".join(self.texts).encode(), whole_lines=True)
            self.texts.clear()
            if fresh and self.rows:
                self.started = self.texts_since

    def add(self, data: bytes, *, whole_lines: bool = False) -> None:
        """Take a message's bytes (``whole_lines``: a text message, its last line complete without a newline)."""
        if whole_lines and not data.endswith(b"\n"):
            data += b"\n"
        data = self.partial + data
        end = data.rfind(b"\n") + 1
        self.partial, data = data[end:], data[:end]
        if self.header is None and data:
            first = data.index(b"\n")
            self.header, data = data[:first], data[first + 1 :]
        if data:
            if not self.rows:
                self.started = time.monotonic()
            self.body += data
            self.rows += data.count(b"\n")

    def due(self) -> bool:
        """Whether the batch is to be cut: ``commit_rows`` lines (a collected text message counts as one, so
        a batch may pass the limit by up to ``GATHER`` lines, as ``read -`` passes it by up to a block) or
        ``commit_seconds`` since its first line arrived."""
        return self.rows + len(self.texts) >= self.options.text.commit_rows or self.seconds_left() <= 0.0

    def seconds_left(self) -> float:
        """How long the batch may still wait for more lines (a full period while it is empty)."""
        if not self.rows and not self.texts:
            return self.options.text.commit_seconds
        first = self.started if self.rows else self.texts_since
        return max(0.0, self.options.text.commit_seconds - (time.monotonic() - first))

    def check_header(self) -> None:
        """Refuse a feed whose header no CSV dialect knows before any of its rows are collected."""
        assert self.header is not None
        path = self.folder / "header.csv"
        path.write_bytes(self.header + b"\n")
        for _ in self._flows(path):
            pass

    def take(self, *, last: bool = False) -> bytes | None:
        """The batch as a CSV (header first; at the end also a last line without a newline), and a new empty
        batch; None when there is nothing to write. Called where ``add`` is (the event loop), so the two
        never interleave; ``write`` then runs on a worker thread."""
        self.gather()
        if last and self.partial:
            self.add(b"", whole_lines=True)
        if not self.rows or self.header is None:
            return None
        batch = self.header + b"\n" + self.body
        self.body, self.rows = bytearray(), 0
        return batch

    def write(self, batch: bytes) -> None:
        """Parse a batch ``take`` gave and hand its flows to the stream."""
        path = self.folder / "batch.csv"
        path.write_bytes(batch)
        for flows in self._flows(path):
            self.stream.write(flows)

    def cut(self, *, last: bool = False) -> None:
        """``take`` and ``write`` in one step (a caller without an event loop)."""
        batch = self.take(last=last)
        if batch is not None:
            self.write(batch)

    def _flows(self, path: Path) -> Iterator[pa.Table]:
        """The flows of a batch file; its errors and skips name the feed, not the temporary file."""
        source = open_source([path], self.options)
        try:
            yield from source
        except FlowscopeError as exc:
            raise FlowscopeError(f"feed: {str(exc).removeprefix(f'{path}: ')}") from None
        for line in source.skips.lines():  # nobody to answer on a one-way feed: the server's log says it
            log.warning("ingest feed: %s", line)


async def serve_feed(
    websocket: WebSocket, lake: Lake, options: ReadOptions, transforms: Sequence[Transform] = ()
) -> None:
    """Receive until the sender closes; every batch cut on the way is in the lake when this returns.
    ``transforms`` (the server's ``--enrich``/``--anonymize``, built once) follow the options' own.

    Input the reader refuses (a header of no known CSV dialect, a row ``--strict`` would stop at) ends the
    feed with close code 1007 and the reason, as ``read -`` ends with an error: what was cut before stays.
    """
    await websocket.accept()
    with tempfile.TemporaryDirectory(prefix="flowscope-feed-") as folder:
        feed = CsvFeed(lake, options, Path(folder), transforms)
        order = asyncio.Lock()  # batches reach the stream in the order they were cut

        async def cut(*, last: bool = False) -> None:
            batch = feed.take(last=last)
            if batch is not None:
                async with order:
                    await run_in_threadpool(feed.write, batch)

        async def tick() -> None:
            """Cut a batch that has waited its time while the sender is idle (a timer beside the receive loop:
            a time-out on every receive costs a task per message)."""
            while True:
                await asyncio.sleep(feed.seconds_left())
                if feed.due():
                    try:
                        await cut()
                    except FlowscopeError as exc:  # the receive loop then sees the connection end
                        log.warning("ingest feed: %s", exc)
                        await websocket.close(code=1007, reason=_reason(str(exc)))
                        return

        ticker = asyncio.create_task(tick())
        texts = feed.texts
        try:
            while True:
                message = await websocket.receive()
                text = message.get("text")
                if text is not None and feed.header is not None:  # the common case: a line, kept as it is
                    if not texts:
                        feed.texts_since = time.monotonic()
                    texts.append(text)
                    if len(texts) < GATHER:
                        continue
                    feed.gather()
                elif message["type"] == "websocket.disconnect":
                    break
                else:  # the header's message (checked before any rows are collected) or a binary one
                    feed.gather()
                    known = feed.header is not None
                    data = text.encode() if text is not None else message.get("bytes") or b""
                    feed.add(data, whole_lines=text is not None)
                    if not known and feed.header is not None:
                        await run_in_threadpool(feed.check_header)
                if feed.due():
                    await cut()
            ticker.cancel()
            await cut(last=True)
            await run_in_threadpool(feed.stream.close)
        except FlowscopeError as exc:
            ticker.cancel()
            await run_in_threadpool(feed.stream.close)
            log.warning("ingest feed: %s", exc)
            await websocket.close(code=1007, reason=_reason(str(exc)))
        except BaseException:
            ticker.cancel()
            feed.stream.abort()
            raise


def _reason(message: str) -> str:
    """A close reason: at most 123 bytes of UTF-8 (RFC 6455 section 5.5: a control frame's payload is at most
    125 bytes, two of them the code)."""
    encoded = message.encode()
    return message if len(encoded) <= 123 else encoded[:120].decode(errors="ignore") + "..."
