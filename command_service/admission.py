"""Admission control: refuse early and cheaply, before any database or model cost.

- :class:`InflightLimit` (ASGI middleware): a global bound on requests in progress in this process;
  beyond it a request is answered 429 + Retry-After at once instead of queueing into collapse.
  The bound adapts (:class:`AdaptiveLimit`, AIMD on latency) between a floor and ``max_inflight``
  so admitted requests keep a bounded latency when capacity drops (a slow disk, a busy host).
  Event streams (SSE) are long-lived and counted against their own fixed bound.
- :class:`RateLimiter`: a token bucket per tenant (requests per second, with a burst), in-process:
  each instance enforces its share, so the fleet-wide rate is the per-instance rate times the
  instance count (Cloud Armor rate limiting in front is the fleet-wide guard).
- :func:`check_active_runs`: a cap on a tenant's runs in the work index, checked when a run starts.
  It is a check-then-act: concurrent starts of one tenant may overshoot by their number.

Refusals are counted on ``agentlane_admission_rejections_total{reason}``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agentlane.problems import problem_for
from agentlane.run_index import RunIndex
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


class _Bucket:
    __slots__ = ("stamp", "tokens")

    def __init__(self, tokens: float, stamp: float) -> None:
        self.tokens = tokens
        self.stamp = stamp


class RateLimiter:
    """Token bucket per tenant: ``rate_per_s`` sustained, ``burst`` at once."""

    def __init__(
        self,
        *,
        rate_per_s: float,
        burst: int,
        metrics: CommandServiceMetrics,
        max_tenants: int = 100_000,
    ) -> None:
        self._rejected = metrics.rejections.labels(reason="rate")
        self.rate_per_s = rate_per_s
        self.burst = max(1, burst)
        self._max_tenants = max_tenants
        self._buckets: dict[str, _Bucket] = {}

    def take(self, tenant: str, *, now: float | None = None) -> None:
        """Spend one token of ``tenant``'s bucket or raise TooManyRequests with the wait."""
        if self.rate_per_s <= 0:
            return
        now = time.monotonic() if now is None else now
        bucket = self._buckets.get(tenant)
        if bucket is None:
            if len(self._buckets) >= self._max_tenants:
                self._forget_full(now)
            bucket = self._buckets[tenant] = _Bucket(float(self.burst), now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.stamp) * self.rate_per_s)
        bucket.stamp = now
        if bucket.tokens < 1.0:
            wait_s = (1.0 - bucket.tokens) / self.rate_per_s
            self._rejected.inc()
            raise TooManyRequests(
                f"request rate over {self.rate_per_s:g}/s for this tenant",
                retry_after_s=wait_s,
                reason="rate",
            )
        bucket.tokens -= 1.0

    def _forget_full(self, now: float) -> None:
        # A bucket that has refilled is indistinguishable from a new one: dropping it is free.
        full = [
            tenant
            for tenant, bucket in self._buckets.items()
            if bucket.tokens + (now - bucket.stamp) * self.rate_per_s >= self.burst
        ]
        for tenant in full:
            del self._buckets[tenant]
        if len(self._buckets) >= self._max_tenants:
            self._buckets.clear()


async def check_active_runs(
    runs: RunIndex,
    tenant: str,
    limit: int,
    retry_after_s: float,
    metrics: CommandServiceMetrics,
) -> None:
    """Raise TooManyRequests when ``tenant`` already has ``limit`` runs queued or in progress."""
    if limit <= 0:
        return
    if await runs.count_active(tenant, limit=limit) >= limit:
        metrics.rejections.labels(reason="active_runs").inc()
        raise TooManyRequests(
            f"this tenant already has {limit} active runs; wait for some to finish",
            retry_after_s=retry_after_s,
            reason="active_runs",
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
