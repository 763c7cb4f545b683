"""The console's ASGI app: the JSON API, the pages, plotly.js from the installed ``plotly`` package, and the
token check.

Security defaults: no CORS headers (browsers refuse cross-origin reads of the API), no interactive API docs
(FastAPI's pull their scripts from a CDN; the schema itself is at /openapi.json), a Content-Security-Policy
that lets pages load scripts from this server only, and, when a token is set, every request must carry it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from flowscope import __version__
from flowscope.errors import FlowscopeError
from flowscope.pipeline import Transform
from flowscope.query.filter_language import FilterError
from flowscope.web.api import router
from flowscope.web.auth import refusal
from flowscope.web.ingest import ingest_router
from flowscope.web.queries import Queries, QueryTimeout

STATIC = Path(__file__).with_name("static")
_CSP = "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; object-src 'none'"


def plotly_js() -> Path:
    """plotly.js as the ``plotly`` wheel ships it (never copied into this repository)."""
    path = Path(str(resources.files("plotly") / "package_data" / "plotly.min.js"))
    if not path.is_file():
        raise FlowscopeError(f"plotly.js is missing from the plotly package ({path}); reinstall plotly")
    return path


def create_app(
    queries: Queries,
    *,
    token: str | None = None,
    ingest_max_bytes: int | None = None,
    ingest_transforms: Sequence[Transform] = (),
) -> FastAPI:
    """The console over ``queries`` (the lake or a database server); with ``token``, requests must present it
    (``auth``); with ``ingest_max_bytes``, ``POST /api/ingest/{format}`` takes flow files of up to that size
    into the lake, through ``ingest_transforms``."""
    app = FastAPI(
        title="flowscope console API",
        version=__version__,
        description="Flows in the lake or a database server: time series, top-N, Sankey, flow search, "
        "exporter health, store. Filters use the filter language of docs/FILTERS.md.",
        docs_url=None,
        redoc_url=None,
    )
    app.state.queries = queries
    app.include_router(router)
    if ingest_max_bytes is not None:
        if queries.lake is None or queries.dialect.name != "lake":
            raise FlowscopeError("ingest writes to the lake: serve the lake to accept flow files")
        app.include_router(ingest_router(queries.lake, ingest_max_bytes, token, ingest_transforms))
    plotly = plotly_js()

    @app.exception_handler(FilterError)
    async def filter_error(request: Request, exc: FilterError) -> JSONResponse:
        return JSONResponse({"detail": f"filter: {exc.reason}", "position": exc.position}, status_code=400)

    @app.exception_handler(QueryTimeout)
    async def timeout(request: Request, exc: QueryTimeout) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=504)

    @app.exception_handler(FlowscopeError)
    async def user_error(request: Request, exc: FlowscopeError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("/traffic.html")

    @app.get("/vendor/plotly.min.js", include_in_schema=False)
    def plotly_script() -> FileResponse:
        return FileResponse(plotly, media_type="text/javascript", headers={"Cache-Control": "max-age=86400"})

    app.mount("/", StaticFiles(directory=STATIC), name="pages")

    @app.middleware("http")
    async def guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if token is not None:
            refused = refusal(request, token)
            if refused is not None:
                return refused
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = _CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    return app
