"""The console's token: where a request may carry it, and what a request without it gets.

A token travels as ``Authorization: Bearer TOKEN`` (API clients), as the cookie a browser gets by opening any
page once as ``...?token=TOKEN`` (it is then sent to the same URL without it, so the address bar, and a URL
shared from it, never shows the token), or in the URL of an API call or the ingest websocket (for tools that
set no headers: ``websocat``, a quick ``curl``).
"""

from __future__ import annotations

import secrets

from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.requests import HTTPConnection, Request

TOKEN_COOKIE = "flowscope_token"


def presented(connection: HTTPConnection, token: str) -> str | None:
    """How ``connection`` carries ``token``: "header", "cookie" or "query"; None when it does not."""

    def matches(candidate: str | None) -> bool:
        return candidate is not None and secrets.compare_digest(candidate.encode(), token.encode())

    header = connection.headers.get("authorization", "")
    if header.startswith("Bearer ") and matches(header.removeprefix("Bearer ").strip()):
        return "header"
    if matches(connection.cookies.get(TOKEN_COOKIE)):
        return "cookie"
    if matches(connection.query_params.get("token")):
        return "query"
    return None


def refusal(request: Request, token: str) -> Response | None:
    """None when ``request`` may go on; else the answer: a 401, or for a page opened with ``?token=`` the
    redirect that sets the cookie."""
    how = presented(request, token)
    if how == "query" and request.method == "GET" and not request.url.path.startswith("/api/"):
        redirect = RedirectResponse(str(request.url.remove_query_params("token")), status_code=303)
        redirect.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
        return redirect
    if how is not None:
        return None
    return JSONResponse(
        {"detail": "a token is required: send 'Authorization: Bearer TOKEN', or open a page once with ?token=TOKEN"},
        status_code=401,
        headers={"WWW-Authenticate": "Bearer"},
    )
