"""``POST /api/ingest/{format}``: a flow file in the request body, read into the lake exactly as ``flowscope read
FILE --format FORMAT [--reduce NAME]`` reads it (``flowscope serve --ingest`` turns it on).

The body is written to a private temporary file (at most the server's limit; a larger body is refused while
it arrives, 413), then goes the way every input goes: the reader registry, the optional built-in reduction,
the lake's destination with its ingest ledger. So a file posted twice is stored once, as a file read twice
is, and a body cut short stores nothing. Reductions are named from the built-in ones only: a reduction file
would be a path on the server.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, WebSocket
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from flowscope.errors import FlowscopeError
from flowscope.lake.layout import Lake
from flowscope.lake.writer import LakeLimits
from flowscope.pipeline import Transform, run
from flowscope.readers import registry
from flowscope.readers.inputs import open_inputs
from flowscope.readers.options import ReadOptions
from flowscope.reduce import BUILTIN
from flowscope.sinks.lake import LakeSink
from flowscope.sinks.registry import DestinationContext, open_destination
from flowscope.web.auth import presented
from flowscope.web.feed import serve_feed

AUTO = "auto"


class Ingested(BaseModel):
    rows: int
    """Flow rows stored (0 when the lake held this content already)."""
    rows_by_table: dict[str, int]
    notes: list[str]
    skips: list[str]


def ingest_file(
    lake: Lake, path: Path, input_format: str | None, reduce: str | None, transforms: Sequence[Transform] = ()
) -> Ingested:
    """Read ``path`` into ``lake`` as ``flowscope read`` does (one unit, committed with its ledger record), the
    server's ``transforms`` (``--enrich``, ``--anonymize``, built once) after the reduction."""
    options = ReadOptions(reduce=BUILTIN[reduce] if reduce else None)
    sink = open_destination("lake", DestinationContext(lake, LakeLimits(), transactional=True))
    try:
        ledgers = [sink.ledger] if isinstance(sink, LakeSink) else []
        plan = open_inputs([str(path)], options, input_format=input_format, ledgers=ledgers)
    except BaseException:
        sink.abort()
        raise
    stats = run(plan, sink, [*options.transforms(), *transforms])
    plan.save_health([lake.root])  # posted exports: the exporters page shows their health, as after a read
    return Ingested(
        rows=stats.rows,
        rows_by_table=stats.rows_by_table,
        notes=[*plan.notes()],
        skips=[line for source in plan.sources for line in source.skips.lines()],
    )


def ingest_router(
    lake: Lake, max_bytes: int, token: str | None = None, transforms: Sequence[Transform] = ()
) -> APIRouter:
    """The ingest routes over ``lake``: POST bodies up to ``max_bytes``, and the CSV websocket (which the app's
    HTTP middleware does not see, so it checks ``token`` itself); every input goes through ``transforms``."""
    router = APIRouter(prefix="/api")
    formats = [AUTO, *registry.readers()]

    @router.websocket("/ingest/csv")
    async def csv_feed(websocket: WebSocket, reduce: str | None = None) -> None:
        if token is not None and presented(websocket, token) is None:
            await websocket.close(code=1008, reason="a token is required")
            return
        if reduce is not None and reduce not in BUILTIN:
            await websocket.close(code=1008, reason=f"unknown reduction {reduce!r} (built-in: {', '.join(BUILTIN)})")
            return
        await serve_feed(websocket, lake, ReadOptions(reduce=BUILTIN[reduce] if reduce else None), transforms)

    @router.post("/ingest/{input_format}", response_model=Ingested)
    async def ingest(
        request: Request,
        input_format: str,
        reduce: Annotated[str | None, Query(description=f"a built-in reduction: {', '.join(BUILTIN)}")] = None,
    ) -> Ingested:
        """Read the body (a flow CSV of any dialect ``read`` knows, an nfdump file, a capture, ...) into the
        lake; ``auto`` detects the format from the content."""
        if input_format not in formats:
            raise HTTPException(400, f"unknown format {input_format!r} (known: {', '.join(formats)})")
        if reduce is not None and reduce not in BUILTIN:
            raise HTTPException(400, f"unknown reduction {reduce!r} (built-in: {', '.join(BUILTIN)})")
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise HTTPException(413, f"the body is larger than the server's limit of {max_bytes:,} bytes")
        with tempfile.TemporaryDirectory(prefix="flowscope-ingest-") as folder:
            path = Path(folder) / "body"
            size = 0
            with open(path, "wb") as body:
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > max_bytes:
                        raise HTTPException(413, f"the body is larger than the server's limit of {max_bytes:,} bytes")
                    body.write(chunk)
            if size == 0:
                raise HTTPException(400, "the body is empty")
            chosen = None if input_format == AUTO else input_format
            try:
                return await run_in_threadpool(ingest_file, lake, path, chosen, reduce, transforms)
            except FlowscopeError as exc:  # name what the client sent, not the server's temporary file
                raise FlowscopeError(str(exc).replace(str(path), "the body")) from exc

    return router
