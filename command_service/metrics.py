"""Prometheus metrics of the command service, on the registry the process serves at ``/metrics``."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agentlane import telemetry


class CommandServiceMetrics:
    """The command service's collectors, created on ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "agentlane_http_requests_total",
            "HTTP requests answered by the command service.",
            ["route", "method", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "agentlane_http_request_duration_seconds",
            "Time to the first response byte of command-service requests.",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=registry,
        )
        self.inflight = Gauge(
            "agentlane_http_inflight_requests", "Command-service requests in progress.",
            registry=registry,
        )
        self.admission_limit = Gauge(
            "agentlane_admission_inflight_limit",
            "Current adaptive bound on requests in progress.",
            registry=registry,
        )
        self.streams = Gauge(
            "agentlane_http_event_streams", "Open server-sent event streams.", registry=registry
        )
        self.rejections = Counter(
            "agentlane_admission_rejections_total",
            "Requests refused with 429 by admission control.",
            ["reason"],
            registry=registry,
        )
        self.runs_started = Counter(
            "agentlane_runs_accepted_total", "Runs accepted (new executions, not replays).",
            registry=registry,
        )


class RequestMetrics:
    """ASGI middleware: count and time every request by its route template (bounded labels)."""

    def __init__(self, app: ASGIApp, *, metrics: CommandServiceMetrics) -> None:
        self.app = app
        self._metrics = metrics
        # ``labels()`` costs tens of microseconds; under overload every one counts.
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._timers: dict[str, Any] = {}

    def _count(self, route: str, method: str, status: int) -> None:
        key = (route, method, status)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = self._metrics.requests.labels(
                route=route, method=method, status=str(status)
            )
        counter.inc()

    def _time(self, route: str, seconds: float) -> None:
        timer = self._timers.get(route)
        if timer is None:
            timer = self._timers[route] = self._metrics.latency.labels(route=route)
        # Exemplars reach scrapers that ask for OpenMetrics (agentlane.service serves both).
        timer.observe(seconds, exemplar=telemetry.exemplar())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def timed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                self._time(_route(scope), time.perf_counter() - started)
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            self._count(_route(scope), scope["method"], status)


def _route(scope: Scope) -> str:
    route = scope.get("route")
    return route.path if isinstance(route, Route) else "unmatched"
