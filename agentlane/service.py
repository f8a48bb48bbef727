"""Run one or more components in one process behind one HTTP port, with a graceful drain.

Every deployable (command service, runner, projector, gateway) is a :class:`Component`: an async
context manager that owns its background tasks, contributes routes, says when it is ready, and
knows how to drain. :func:`run_service` adds ``/healthz``, ``/readyz`` and ``/metrics``, serves on a
real ASGI server (uvicorn, with the limits of :mod:`agentlane.http_limits`), and on SIGTERM/SIGINT:
marks the process not ready, drains every component, stops the server (requests in flight finish
or are cut), then exits the components: all of it within ``grace_s``, give or take a second.

Metrics: the process's composition root makes one :func:`metrics_registry`, gives it to each
component (which creates its collectors on it) and to :func:`run_service`, which serves it. No
collector lives on a global registry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import signal
from collections.abc import Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

import uvicorn
from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.exposition import choose_encoder
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Match, Route, WebSocketRoute
from starlette.types import Scope

from agentlane import telemetry
from agentlane.http_limits import SERVER_LIMITS
from agentlane.pool_metrics import PoolCollector
from agentlane.problems import http_exception_problem
from agentlane.trace_context import TraceContextMiddleware

logger = logging.getLogger(__name__)


@runtime_checkable
class Component(Protocol):
    """One deployable's work inside a process."""

    name: str

    async def __aenter__(self) -> Any: ...

    async def __aexit__(self, *exc_info: object) -> None: ...

    def routes(self) -> Sequence[BaseRoute]:
        """HTTP/WebSocket routes this component serves (may be empty)."""
        ...

    def is_ready(self) -> bool:
        """True while the component can do its job (``/readyz``)."""
        ...

    async def drain(self) -> None:
        """Stop taking new work and finish (or hand back) what is in flight."""
        ...


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: run_service owns SIGTERM and the drain order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def metrics_registry() -> CollectorRegistry:
    """A process's registry: its components' collectors join the process, platform and GC ones."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    registry.register(PoolCollector())
    return registry


def build_app(
    components: Sequence[Component],
    draining: asyncio.Event,
    *,
    registry: CollectorRegistry,
) -> Starlette:
    """The process's app: the components' routes, health, readiness and ``registry``'s metrics."""

    async def healthz(_: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(_: Request) -> Response:
        states = {c.name: c.is_ready() for c in components}
        ok = all(states.values()) and not draining.is_set()
        return JSONResponse(
            {"ready": ok, "draining": draining.is_set(), "components": states},
            status_code=200 if ok else 503,
        )

    async def metrics(request: Request) -> Response:
        # OpenMetrics when the scraper asks for it (Managed Prometheus does): the only exposition
        # that carries exemplars, the trace ids on latency buckets.
        encode, media_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encode(registry), media_type=media_type)

    routes: list[BaseRoute] = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
    ]
    for component in components:
        routes.extend(component.routes())
    # Every line a request logs carries its trace: the request's span when tracing is on, else
    # the trace of its traceparent header (agentlane.trace_context).
    middleware = [
        _traced_requests(routes) if telemetry.enabled() else Middleware(TraceContextMiddleware)
    ]
    # Unknown routes and methods answer problem+json like every other HTTP error (docs/contract.md).
    return Starlette(
        routes=routes,
        exception_handlers={HTTPException: http_exception_problem},
        middleware=middleware,
    )


#: Probes and scrapes make no spans, and neither do WebSockets: a span would last the socket's
#: life; the gateway traces each command frame and each event it fans out instead.
_UNTRACED_PATHS = "/healthz,/readyz,/metrics,/ws/"


def _traced_requests(routes: Sequence[BaseRoute]) -> Middleware:
    """OpenTelemetry's ASGI middleware: a server span per HTTP request, named by its route
    template (``POST /agents/{sessionId}/runs``) so that spans group by endpoint, not by id."""
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    def span_details(scope: Scope) -> tuple[str, dict[str, Any]]:
        method = scope.get("method", "")
        for route in routes:
            match, _ = route.matches(scope)
            if match is Match.FULL and isinstance(route, Route | WebSocketRoute):
                return f"{method} {route.path}", {"http.route": route.path}
        return method, {}

    return Middleware(
        OpenTelemetryMiddleware,
        excluded_urls=_UNTRACED_PATHS,
        default_span_details=span_details,
        exclude_spans=["receive", "send"],
    )


async def run_service(
    components: Sequence[Component],
    *,
    host: str,
    port: int,
    registry: CollectorRegistry,
    grace_s: float = 30.0,
    uvicorn_options: dict[str, Any] | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT (or a component fails), then drain and stop; ``/metrics``
    serves ``registry``."""
    stop = asyncio.Event()
    draining = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    app = build_app(components, draining, registry=registry)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=max(1, int(grace_s)),
        **{**SERVER_LIMITS, **(uvicorn_options or {})},
    )
    server = _Server(config)
    try:
        async with contextlib.AsyncExitStack() as stack:
            for component in components:
                await stack.enter_async_context(component)
            serving = asyncio.create_task(server.serve(), name="uvicorn")
            stopping = asyncio.create_task(stop.wait(), name="stop-signal")
            done, _ = await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if serving in done:
                stopping.cancel()
                serving.result()
                raise RuntimeError("the HTTP server stopped unexpectedly")
            logger.info("shutdown requested; draining", extra={"grace_s": grace_s})
            draining.set()
            deadline = loop.time() + grace_s
            try:
                async with asyncio.timeout(grace_s):
                    await asyncio.gather(*(c.drain() for c in components))
            except TimeoutError:
                logger.warning("drain exceeded the grace period; stopping anyway")
            # Requests still in flight get what is left of the one grace period, not a second
            # one: the platform's SIGKILL comes at a fixed time after SIGTERM (Cloud Run: 10 s).
            config.timeout_graceful_shutdown = max(1, math.ceil(deadline - loop.time()))
            server.should_exit = True
            await serving
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    logger.info("stopped")
