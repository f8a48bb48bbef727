"""Admission control: refuse early and cheaply, before any database or model cost.

- :class:`InflightLimit` (ASGI middleware): a global bound on requests in progress in this process;
  beyond it a request is answered 429 + Retry-After at once instead of queueing into collapse.
  The bound adapts (:class:`AdaptiveLimit`, AIMD on latency) between a floor and ``max_inflight``
  so admitted requests keep a bounded latency when capacity drops (a slow disk, a busy host).
  Event streams (SSE) are long-lived and counted against their own fixed bound.

The tenant's own limits are the core's, the same for every door: the request rate
(:class:`agentlane.admission.RateLimiter`) and the active-run cap (enforced in the transaction that
accepts a run, :meth:`agentlane.commands.Commands.start_run`).

Refusals are counted on ``agentlane_admission_rejections_total{reason}``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agentlane.problems import problem_for
from command_service.errors import TooManyRequests
from command_service.metrics import CommandServiceMetrics


@dataclass(frozen=True, slots=True)
class Limits:
    """Admission limits of one instance (``command-service`` flags; 0 disables a limit)."""

    max_inflight: int = 64
    max_streams: int = 1000
    latency_target_s: float = 0.25
    rate_per_s: float = 50.0
    burst: int = 100
    max_active_runs: int = 100
    retry_after_s: float = 1.0


class _Overloaded(TooManyRequests):
    slug = "overloaded"

    def __init__(self, *, retry_after_s: float) -> None:
        super().__init__(
            "the server is at capacity; retry later", retry_after_s=retry_after_s,
            reason="inflight",
        )


def _is_stream(scope: Scope) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"accept" and b"text/event-stream" in value:
            return True
    return False


class AdaptiveLimit:
    """An AIMD concurrency limit steering admitted requests' latency toward ``target_s``.

    A completion slower than the target cuts the limit by 30% (at most once per half target, so
    one congested moment counts once); a faster one adds ``1/limit`` (about +1 per limit's worth
    of completions). The limit stays within ``[floor, ceiling]``; ``target_s <= 0`` keeps it fixed.
    """

    DECREASE = 0.7

    def __init__(self, *, ceiling: int, target_s: float, floor: int = 2) -> None:
        self.ceiling = ceiling
        self.floor = max(1, min(floor, ceiling))
        self.target_s = target_s
        self.limit = float(ceiling)
        self._last_cut = -math.inf

    @property
    def current(self) -> int:
        return int(self.limit)

    def observe(self, latency_s: float, now: float) -> None:
        if self.target_s <= 0:
            return
        if latency_s > self.target_s:
            if now - self._last_cut >= self.target_s / 2:
                self.limit = max(float(self.floor), self.limit * self.DECREASE)
                self._last_cut = now
        else:
            self.limit = min(float(self.ceiling), self.limit + 1.0 / self.limit)


class InflightLimit:
    """ASGI middleware: at most ``max_inflight`` requests (and ``max_streams`` event streams) in
    progress; the rest get 429 with Retry-After before any work is done for them."""

    def __init__(self, app: ASGIApp, *, limits: Limits, metrics: CommandServiceMetrics) -> None:
        self.app = app
        self._metrics = metrics
        self.adaptive = AdaptiveLimit(
            ceiling=limits.max_inflight, target_s=limits.latency_target_s
        )
        self.max_streams = limits.max_streams
        # Built once: refusing must stay cheaper than serving, or overload still collapses.
        self._overloaded = problem_for(_Overloaded(retry_after_s=limits.retry_after_s))
        self.inflight = 0
        self.streams = 0
        self._rejected = {
            reason: metrics.rejections.labels(reason=reason) for reason in ("inflight", "streams")
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        stream = _is_stream(scope)
        current, bound = (self.streams, self.max_streams) if stream else (
            self.inflight, self.adaptive.current
        )
        if bound > 0 and current >= bound:
            self._rejected["streams" if stream else "inflight"].inc()
            await self._overloaded(scope, receive, send)
            return
        await self._run(scope, receive, send, stream)

    async def _run(self, scope: Scope, receive: Receive, send: Send, stream: bool) -> None:
        if stream:
            self.streams += 1
            self._metrics.streams.inc()
            try:
                await self.app(scope, receive, send)
            finally:
                self._metrics.streams.dec()
                self.streams -= 1
            return
        self.inflight += 1
        self._metrics.inflight.inc()
        started = time.monotonic()

        async def timed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                now = time.monotonic()
                self.adaptive.observe(now - started, now)
                self._metrics.admission_limit.set(self.adaptive.current)
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            self._metrics.inflight.dec()
            self.inflight -= 1
