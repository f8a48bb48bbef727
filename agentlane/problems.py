"""HTTP error bodies: ``application/problem+json`` (RFC 9457) with type, title, status, detail.

Shared by every component that answers HTTP, so an unknown route or method answers the same shape
as a failed command, whichever component's routes sit on the port.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

__all__ = ["PROBLEM_CONTENT_TYPE", "http_exception_problem", "problem_response", "problem_type"]

PROBLEM_CONTENT_TYPE = "application/problem+json"
_TYPE_BASE = "https://agentlane.dev/problems/"


def problem_type(slug: str) -> str:
    """The ``type`` URI of a problem kind (e.g. ``not-found``)."""
    return _TYPE_BASE + slug


def problem_response(
    status: int,
    detail: str,
    *,
    slug: str | None = None,
    title: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """A problem+json response; ``title`` defaults to the status phrase."""
    phrase = HTTPStatus(status).phrase
    body = {
        "type": problem_type(slug or phrase.lower().replace(" ", "-").replace("'", "")),
        "title": title or phrase,
        "status": status,
        "detail": detail,
    }
    return JSONResponse(
        body, status_code=status, headers=dict(headers or {}), media_type=PROBLEM_CONTENT_TYPE
    )


async def http_exception_problem(request: Request, exc: Exception) -> Response:
    """Starlette exception handler: routing 404/405 (and any HTTPException) as problem+json."""
    assert isinstance(exc, HTTPException)
    detail = exc.detail
    if exc.status_code == 404:
        detail = f"no route for {request.url.path}"
    elif exc.status_code == 405:
        detail = f"{request.scope.get('method')} is not allowed on {request.url.path}"
    return problem_response(exc.status_code, detail, headers=exc.headers)
