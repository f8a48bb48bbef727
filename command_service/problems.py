"""Every refusal as application/problem+json: our own rejections and the shared core's errors.

Mapping (most specific first): RunNotFound 404, RunConflict/RunFinished 409, other CommandError and
InvalidEvent 422, Unauthorized 401, StoreUnavailable/AuthUnavailable 503 with Retry-After.
"""

from __future__ import annotations

import logging

from starlette.responses import Response

from agentlane.auth import AuthUnavailable, Unauthorized
from agentlane.errors import (
    AgentlaneError,
    CommandError,
    InvalidEvent,
    RunConflict,
    RunFinished,
    RunNotFound,
    StoreUnavailable,
)
from agentlane.problems import problem_response
from command_service.errors import RequestRejected

log = logging.getLogger(__name__)

#: Seconds a client should wait before retrying when a dependency is down.
UNAVAILABLE_RETRY_AFTER_S = 2


def not_found(detail: str) -> Response:
    return problem_response(404, detail, slug="not-found")


def problem_for(exc: AgentlaneError) -> Response:
    """The HTTP answer for an expected error (anything else is a 500, logged by the caller)."""
    retry = {"Retry-After": str(UNAVAILABLE_RETRY_AFTER_S)}
    match exc:
        case RequestRejected():
            return problem_response(exc.status, exc.detail, slug=exc.slug, headers=exc.headers)
        case Unauthorized():
            return problem_response(
                401, exc.reason, slug="unauthorized", headers={"WWW-Authenticate": "Bearer"}
            )
        case RunNotFound():
            return not_found(str(exc))
        case RunConflict():
            return problem_response(409, str(exc), slug="run-conflict")
        case RunFinished():
            return problem_response(409, str(exc), slug="run-finished")
        case CommandError() | InvalidEvent():
            return problem_response(422, str(exc), slug="invalid-command")
        case StoreUnavailable():
            log.warning("database unavailable: %s", exc)
            return problem_response(
                503, "the event store is unavailable; retry later", slug="unavailable",
                headers=retry,
            )
        case AuthUnavailable():
            log.warning("token keys unavailable: %s", exc)
            return problem_response(
                503, "cannot verify tokens right now; retry later", slug="unavailable",
                headers=retry,
            )
        case _:
            log.error("unexpected error: %s", exc, exc_info=exc)
            return problem_response(500, "internal error", slug="internal-error")
