"""Errors of the command service: a request it refuses, with the HTTP answer it deserves.

    AgentlaneError
    └── CommandServiceError
        └── RequestRejected          a request answered with a 4xx/5xx problem (nothing written)
            ├── MalformedRequest     400: the body is not JSON
            ├── PayloadTooLarge      413: the body exceeds the limit (counted while reading)
            ├── RequestTimeout       408: the body did not arrive within its deadline
            ├── UnsupportedMedia     415: the body is not application/json
            ├── InvalidRequest       422: JSON that does not match the model (names the field)
            └── TooManyRequests      429: a tenant quota or the global in-flight bound (Retry-After)

Each carries its own answer (``status``, ``slug``, ``detail``, ``headers()``), like every error of
the shared core (RunNotFound, RunConflict, StoreUnavailable, …), and
:func:`agentlane.problems.problem_for` turns any of them into problem+json.
"""

from __future__ import annotations

from agentlane.errors import AgentlaneError


class CommandServiceError(AgentlaneError):
    """Root of the command service's own errors."""


class RequestRejected(CommandServiceError):
    """A refused request; its message is the problem's ``detail``."""

    code, status, slug = "bad_request", 400, "bad-request"


class MalformedRequest(RequestRejected):
    code, status, slug = "malformed_json", 400, "malformed-json"


class PayloadTooLarge(RequestRejected):
    code, status, slug = "payload_too_large", 413, "payload-too-large"


class RequestTimeout(RequestRejected):
    code, status, slug = "request_timeout", 408, "request-timeout"


class UnsupportedMedia(RequestRejected):
    code, status, slug = "unsupported_media_type", 415, "unsupported-media-type"


class InvalidRequest(RequestRejected):
    code, status, slug = "invalid_request", 422, "invalid-request"


class TooManyRequests(RequestRejected):
    code, status, slug = "too_many_requests", 429, "too-many-requests"

    def __init__(self, detail: str, *, retry_after_s: float, reason: str) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s
        self.reason = reason
