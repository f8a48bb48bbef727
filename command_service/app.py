"""The command API's routes (docs/contract.md, "HTTP"): one Starlette app behind admission control.

Every request: global in-flight bound → route (404/405) → verified tenant → tenant rate limit →
body checks → the command or read. Every refusal is problem+json; nothing is written for one.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from agentlane import commands
from agentlane.admission import RateLimiter
from agentlane.auth import Authenticator, bearer_token
from agentlane.commands import Commands
from agentlane.errors import AgentlaneError, Refused, RunNotFound
from agentlane.events import run_options
from agentlane.logs import log_context
from agentlane.problems import (
    http_exception_problem,
    internal_error_problem,
    problem_for,
    problem_response,
)
from agentlane.run_index import RunIndex
from agentlane.store import EventStore
from command_service.admission import InflightLimit, Limits, TenantShares
from command_service.bodies import read_model
from command_service.errors import InvalidRequest, TooManyRequests
from command_service.metrics import CommandServiceMetrics, RequestMetrics
from command_service.models import (
    CancelAccepted,
    CancelRequest,
    ForkAccepted,
    ForkRequest,
    RunAcceptedResponse,
    SignalAccepted,
    SignalRequest,
    StartRunRequest,
)
from command_service.openapi import build_openapi
from command_service.ops import DEFAULT_DAYS, MAX_DAYS, OpsReader
from command_service.reads import RunReader, UsageReader, events_page
from command_service.sse import EventStream, WakeBroadcast

logger = logging.getLogger(__name__)

_INTEGER = re.compile(r"-?[0-9]{1,20}")
DEFAULT_PAGE, MAX_PAGE = 100, 1000
_SHA256 = re.compile(r"[0-9a-f]{64}")
#: A blob never changes (its name is its hash); only its tenant may read it.
_IMMUTABLE = "private, max-age=31536000, immutable"


@dataclass(frozen=True, slots=True)
class Dependencies:
    store: EventStore
    commands: Commands
    run_index: RunIndex
    authenticator: Authenticator
    limits: Limits
    rate: RateLimiter
    shares: TenantShares
    runs: RunReader
    usage: UsageReader
    ops: OpsReader
    broadcast: WakeBroadcast
    metrics: CommandServiceMetrics


def build_app(deps: Dependencies) -> Starlette:
    """The command API as one ASGI app; the component routes each of its paths to it."""
    api = _Api(deps)
    openapi = build_openapi(jwt=deps.authenticator.mode == "jwt")

    async def openapi_json(_: Request) -> Response:
        return JSONResponse(openapi)

    routes = [
        Route("/agents/{sessionId}/runs", api.start_run, methods=["POST"]),
        Route("/runs/{executionId}", api.get_run, methods=["GET"]),
        Route("/runs/{executionId}/cancel", api.cancel, methods=["POST"]),
        Route("/runs/{executionId}/signals/{name}", api.signal, methods=["POST"]),
        Route("/sessions/{sessionId}/events", api.events, methods=["GET"]),
        Route("/sessions/{sessionId}/usage", api.session_usage, methods=["GET"]),
        Route("/sessions/{sessionId}/fork", api.fork, methods=["POST"]),
        Route("/usage", api.usage, methods=["GET"]),
        Route("/blobs/{sha256}", api.blob, methods=["GET"]),
        Route("/ops/overview", api.ops_overview, methods=["GET"]),
        Route("/openapi.json", openapi_json, methods=["GET"]),
    ]
    return Starlette(
        routes=routes,
        middleware=[
            Middleware(RequestMetrics, metrics=deps.metrics),
            Middleware(
                InflightLimit, limits=deps.limits, metrics=deps.metrics, shares=deps.shares
            ),
        ],
        exception_handlers={
            HTTPException: http_exception_problem,
            AgentlaneError: _agentlane_problem,
            Exception: _internal_error,
        },
    )


async def _agentlane_problem(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, AgentlaneError)
    return problem_for(exc)


async def _internal_error(_: Request, exc: Exception) -> Response:
    logger.error("unexpected error", exc_info=exc)
    return internal_error_problem()


class _Api:
    def __init__(self, deps: Dependencies) -> None:
        self.deps = deps
        self.store = deps.store

    async def _tenant(self, request: Request) -> str:
        """The verified tenant, after its rate limit and within its share of the instance: the
        first thing every API request does."""
        token = bearer_token(request.headers.get("authorization"))
        tenant = await self.deps.authenticator.tenant_for(token)
        with self._counting_refusals():
            self.deps.rate.take(tenant)
            self.deps.shares.enter(tenant, request.scope)
        return tenant

    async def _operator(self, request: Request) -> str:
        """:meth:`_tenant` for an operator's route: the token must carry the operator claim
        (403 otherwise); counted under its tenant claim, or ``operator``."""
        token = bearer_token(request.headers.get("authorization"))
        caller = await self.deps.authenticator.operator(token)
        with self._counting_refusals():
            self.deps.rate.take(caller)
            self.deps.shares.enter(caller, request.scope)
        return caller

    @contextlib.contextmanager
    def _counting_refusals(self) -> Iterator[None]:
        try:
            yield
        except (Refused, TooManyRequests) as refused:
            self.deps.metrics.rejections.labels(reason=refused.reason).inc()
            raise

    async def start_run(self, request: Request) -> Response:
        tenant = await self._tenant(request)
        session_id = request.path_params["sessionId"]
        if not commands.is_identifier(session_id):
            raise InvalidRequest("path.sessionId: must be 1-128 characters of [A-Za-z0-9._:-]")
        body = await read_model(request, StartRunRequest)
        with log_context(tenant=tenant, session=session_id), self._counting_refusals():
            accepted = await self.deps.commands.start_run(
                tenant_id=tenant,
                session_id=session_id,
                run_id=body.runId,
                message=body.message,
                on_conflict=body.onConflict,
                approval_timeout_s=body.approvalTimeoutSeconds,
                options=run_options(body.options),
            )
        if accepted.created:
            self.deps.metrics.runs_started.inc()
        if logger.isEnabledFor(logging.DEBUG):
            with log_context(tenant=tenant, session=session_id, execution=accepted.execution_id):
                logger.debug("run accepted", extra={"replayed": not accepted.created})
        # A retry gets the first answer: the run as it was accepted, not as it is now.
        answer = RunAcceptedResponse(
            executionId=accepted.execution_id,
            sessionId=accepted.session_id,
            runId=accepted.run_id,
            eventId=accepted.event_id,
            status="queued",
        )
        headers = {"Location": f"/runs/{accepted.execution_id}"}
        if not accepted.created:
            headers["Idempotent-Replayed"] = "true"
        return JSONResponse(answer.model_dump(), status_code=202, headers=headers)

    async def get_run(self, request: Request) -> Response:
        tenant = await self._tenant(request)
        execution_id = request.path_params["executionId"]
        if not commands.is_identifier(execution_id):
            raise RunNotFound(execution_id)
        with log_context(tenant=tenant, execution=execution_id):
            return JSONResponse(await self.deps.runs.run(tenant, execution_id))

    async def events(self, request: Request) -> Response:
        tenant = await self._tenant(request)
        session_id = request.path_params["sessionId"]
        stream = "text/event-stream" in request.headers.get("accept", "")
        after = _int_param(request, "after", default=0, minimum=0, maximum=2**63 - 1)
        if stream and "last-event-id" in request.headers:
            after = _int_value(
                "header.Last-Event-ID", request.headers["last-event-id"], 0, 2**63 - 1
            )
        limit = _int_param(request, "limit", default=DEFAULT_PAGE, minimum=1, maximum=MAX_PAGE)
        # A session the tenant may use is a stream that may still be empty: "subscribe, then ask"
        # must work over SSE as over a WebSocket (a browser's EventSource never retries a 404).
        if not commands.is_identifier(session_id):
            return problem_response(404, f"session {session_id!r} not found", slug="not-found")
        if stream:
            return _AsgiResponse(
                EventStream(
                    self.store, self.deps.broadcast,
                    tenant=tenant, session_id=session_id, after=after,
                )
            )
        events, next_id = await events_page(
            self.store, tenant, session_id, after=after, limit=limit
        )
        page = {"events": [event.to_json() for event in events], "next": next_id}
        return JSONResponse(page)

    async def usage(self, request: Request) -> Response:
        tenant = await self._tenant(request)
        since, until = _date_param(request, "since"), _date_param(request, "until")
        with log_context(tenant=tenant):
            return JSONResponse(await self.deps.usage.tenant(tenant, since=since, until=until))

    async def blob(self, request: Request) -> Response:
        tenant = await self._tenant(request)
        sha256 = request.path_params["sha256"]
        ref = await self.store.blob_of(tenant, sha256) if _SHA256.fullmatch(sha256) else None
        if ref is None or self.store.blobs is None:
            return problem_response(404, f"blob {sha256[:64]!r} not found", slug="not-found")
        with log_context(tenant=tenant):
            content = await self.store.blobs.read(ref)
        return Response(
            content, media_type="application/json",
            headers={"ETag": f'"{sha256}"', "Cache-Control": _IMMUTABLE},
        )

    async def ops_overview(self, request: Request) -> Response:
        await self._operator(request)
        days = _int_param(request, "days", default=DEFAULT_DAYS, minimum=1, maximum=MAX_DAYS)
        return JSONResponse(await self.deps.ops.overview(days=days))

    async def session_usage(self, request: Request) -> Response:
        tenant = await self._tenant(request)
        session_id = request.path_params["sessionId"]
        if not commands.is_identifier(session_id):
            return problem_response(404, f"session {session_id!r} not found", slug="not-found")
        with log_context(tenant=tenant, session=session_id):
            return JSONResponse(await self.deps.usage.session(tenant, session_id))

    async def fork(self, request: Request) -> Response:
        tenant = await self._tenant(request)
        session_id = request.path_params["sessionId"]
        if not commands.is_identifier(session_id):
            raise InvalidRequest("path.sessionId: must be 1-128 characters of [A-Za-z0-9._:-]")
        body = await read_model(request, ForkRequest)
        with log_context(tenant=tenant, session=session_id):
            event = await self.deps.commands.fork_session(
                tenant_id=tenant, session_id=session_id, at_event_id=body.atEventId,
                new_session_id=body.newSessionId,
            )
        answer = ForkAccepted(
            sessionId=body.newSessionId, parentSessionId=session_id, atEventId=body.atEventId,
            eventId=event.event_id,
        )
        return JSONResponse(
            answer.model_dump(), status_code=201,
            headers={"Location": f"/sessions/{body.newSessionId}/events"},
        )

    async def cancel(self, request: Request) -> Response:
        tenant = await self._tenant(request)
        execution_id = request.path_params["executionId"]
        body = await read_model(request, CancelRequest, optional=True)
        if not commands.is_identifier(execution_id):
            raise RunNotFound(execution_id)
        with log_context(tenant=tenant, execution=execution_id):
            event = await self.deps.commands.cancel_run(
                tenant_id=tenant, execution_id=execution_id, reason=body.reason
            )
        answer = CancelAccepted(
            executionId=execution_id, eventId=event.event_id if event else None
        )
        return JSONResponse(answer.model_dump(), status_code=202)

    async def signal(self, request: Request) -> Response:
        tenant = await self._tenant(request)
        execution_id = request.path_params["executionId"]
        name = request.path_params["name"]
        if not commands.is_identifier(name):
            raise InvalidRequest("path.name: must be 1-128 characters of [A-Za-z0-9._:-]")
        body = await read_model(request, SignalRequest)
        if not commands.is_identifier(execution_id):
            raise RunNotFound(execution_id)
        with log_context(tenant=tenant, execution=execution_id):
            event = await self.deps.commands.signal_run(
                tenant_id=tenant, execution_id=execution_id, name=name, payload=body.payload
            )
        answer = SignalAccepted(executionId=execution_id, name=name, eventId=event.event_id)
        return JSONResponse(answer.model_dump(), status_code=202)


class _AsgiResponse(Response):
    """Hands the connection to an ASGI callable (the event stream) from a request handler."""

    def __init__(self, app: Any) -> None:
        super().__init__()
        self._app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self._app(scope, receive, send)


def _int_param(request: Request, name: str, *, default: int, minimum: int, maximum: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    return _int_value(f"query.{name}", raw, minimum, maximum)


def _date_param(request: Request, name: str) -> date | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        if len(raw) != 10:
            raise ValueError
        return date.fromisoformat(raw)
    except ValueError:
        raise InvalidRequest(f"query.{name}: must be a day, YYYY-MM-DD") from None


def _int_value(field: str, raw: str, minimum: int, maximum: int) -> int:
    if not _INTEGER.fullmatch(raw):
        raise InvalidRequest(f"{field}: must be an integer")
    value = int(raw)
    if not minimum <= value <= maximum:
        raise InvalidRequest(f"{field}: must be between {minimum} and {maximum}")
    return value
