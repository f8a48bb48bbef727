"""The errors of the client, one hierarchy:

    AgentlaneClientError
    ├── APIError               the API answered with a problem (RFC 9457 problem+json)
    │   ├── BadRequest         400, 413, 415, 422: the request is wrong; fix it
    │   ├── Unauthorized       401: no valid token
    │   ├── Forbidden          403: a valid token that may not do this (an operator's route)
    │   ├── NotFound           404: no such run or session (of your tenant)
    │   ├── Conflict           409: the run conflicts (``run-conflict``) or has ended
    │   ├── RateLimited        429: slow down; ``retry_after`` seconds
    │   └── ServiceUnavailable 503 (and other 5xx): try again later
    ├── APIConnectionError     the server could not be reached (after retries)
    ├── BlobMismatch           a blob's bytes do not hash to the reference that named them
    ├── GatewayError           the gateway answered a socket frame with an ``error`` frame
    └── ConnectionLost         the socket closed for good (4001 unauthorized, or the caller's
                               deadline passed while reconnecting)
"""

from __future__ import annotations

from typing import Any

import httpx

__all__ = [
    "APIConnectionError",
    "APIError",
    "AgentlaneClientError",
    "BadRequest",
    "BlobMismatch",
    "Conflict",
    "ConnectionLost",
    "GatewayError",
    "NotFound",
    "RateLimited",
    "ServiceUnavailable",
    "Unauthorized",
]


class AgentlaneClientError(Exception):
    """Anything the client raises."""


class APIError(AgentlaneClientError):
    """A problem+json answer: ``status``, ``type`` (the problem's slug), ``title``, ``detail``."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        self.type = str(problem.get("type", "about:blank")).rsplit("/", 1)[-1]
        self.title = str(problem.get("title", ""))
        self.detail = str(problem.get("detail", ""))
        super().__init__(f"{status} {self.type}: {self.detail or self.title}")


class BadRequest(APIError):
    pass


class Unauthorized(APIError):
    pass


class Forbidden(APIError):
    pass


class NotFound(APIError):
    pass


class Conflict(APIError):
    pass


class RateLimited(APIError):
    def __init__(self, status: int, problem: dict[str, Any], retry_after: float | None) -> None:
        super().__init__(status, problem)
        self.retry_after = retry_after


class ServiceUnavailable(APIError):
    def __init__(self, status: int, problem: dict[str, Any], retry_after: float | None) -> None:
        super().__init__(status, problem)
        self.retry_after = retry_after


class APIConnectionError(AgentlaneClientError):
    """The request never got an answer: the server is not reachable (or the network failed)."""


class BlobMismatch(AgentlaneClientError):
    """``blobs.get``: the bytes received are not the blob the reference names."""


class GatewayError(AgentlaneClientError):
    """An ``error`` frame: ``code`` (``run_not_found``, ``rate_limited``, …) and ``message``."""

    def __init__(self, code: str, message: str, retry_after: float | None = None) -> None:
        self.code = code
        self.message = message
        self.retry_after = retry_after
        super().__init__(f"{code}: {message}")


class ConnectionLost(AgentlaneClientError):
    """The socket closed and will not be reopened (``code`` is its close code)."""

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason
        super().__init__(f"socket closed {code}: {reason}")


def raise_for_problem(response: httpx.Response) -> None:
    """Turn an error answer into its typed error; a success passes."""
    if response.is_success:
        return
    try:
        problem = response.json()
        if not isinstance(problem, dict):
            raise ValueError
    except ValueError:
        problem = {"type": "about:blank", "title": response.reason_phrase, "detail": response.text}
    status = response.status_code
    retry_after = _seconds(response.headers.get("retry-after"))
    if status == 429:
        raise RateLimited(status, problem, retry_after)
    if status >= 500:
        raise ServiceUnavailable(status, problem, retry_after)
    kind = {401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict}.get(
        status, BadRequest
    )
    raise kind(status, problem)


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
