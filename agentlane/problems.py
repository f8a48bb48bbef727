"""HTTP error bodies: ``application/problem+json`` (RFC 9457) with type, title, status, detail.

Shared by every component that answers HTTP, so an unknown route or method answers the same shape
as a failed command, whichever component's routes sit on the port. :func:`problem_for` reads what
an :class:`~agentlane.errors.AgentlaneError` says about itself (``status``, ``slug``, ``detail``,
``headers()``): the same attributes a WebSocket ``error`` frame is built from.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from agentlane.errors import AgentlaneError

__all__ = [
    "PROBLEM_CONTENT_TYPE",
    "http_exception_problem",
    "internal_error_problem",
    "problem_for",
    "problem_response",
    "problem_type",
]

logger = logging.getLogger(__name__)

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


def problem_for(exc: AgentlaneError) -> Response:
    """The HTTP answer an expected error describes. A 5xx is logged: 503s as warnings (a
    dependency is down), the rest as errors with their traceback."""
    if exc.status >= 500:
        if exc.status == 503:
            logger.warning("%s: %s", type(exc).__name__, exc)
        else:
            logger.error("unexpected error: %s", exc, exc_info=exc)
    return problem_response(exc.status, exc.detail, slug=exc.slug, headers=exc.headers())


def internal_error_problem() -> Response:
    """The answer to an error nobody expected (the caller logs it)."""
    return problem_response(500, "internal error", slug="internal-error")


async def http_exception_problem(request: Request, exc: Exception) -> Response:
    """Starlette exception handler: routing 404/405 (and any HTTPException) as problem+json."""
    assert isinstance(exc, HTTPException)
    detail = exc.detail
    if exc.status_code == 404:
        detail = f"no route for {request.url.path}"
    elif exc.status_code == 405:
        detail = f"{request.scope.get('method')} is not allowed on {request.url.path}"
    return problem_response(exc.status_code, detail, headers=exc.headers)
