"""Errors of the command service: a request it refuses, with the HTTP answer it deserves.

    AgentlaneError
    └── CommandServiceError
        └── RequestRejected          a request answered with a 4xx/5xx problem (nothing written)
            ├── MalformedRequest     400: the body is not JSON
            ├── PayloadTooLarge      413: the body exceeds the limit (counted while reading)
            ├── UnsupportedMedia     415: the body is not application/json
            ├── InvalidRequest       422: JSON that does not match the model (names the field)
            └── TooManyRequests      429: a tenant quota or the global in-flight bound (Retry-After)

Errors of the shared core (RunNotFound, RunConflict, StoreUnavailable, …) are mapped to problems in
:mod:`command_service.problems`.
"""

from __future__ import annotations

import math

from agentlane.errors import AgentlaneError


class CommandServiceError(AgentlaneError):
    """Root of the command service's own errors."""


class RequestRejected(CommandServiceError):
    """A refused request: ``status``, ``slug`` (problem type) and ``detail`` for problem+json."""

    status = 400
    slug = "bad-request"

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}


class MalformedRequest(RequestRejected):
    status, slug = 400, "malformed-json"


class PayloadTooLarge(RequestRejected):
    status, slug = 413, "payload-too-large"


class UnsupportedMedia(RequestRejected):
    status, slug = 415, "unsupported-media-type"


class InvalidRequest(RequestRejected):
    status, slug = 422, "invalid-request"


class TooManyRequests(RequestRejected):
    status, slug = 429, "too-many-requests"

    def __init__(self, detail: str, *, retry_after_s: float, reason: str) -> None:
        super().__init__(detail, headers={"Retry-After": str(max(1, math.ceil(retry_after_s)))})
        self.retry_after_s = retry_after_s
        self.reason = reason
