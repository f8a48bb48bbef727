"""Admission control: refuse early and cheaply, before any database or model cost.

- :class:`InflightLimit` (ASGI middleware): a global bound on requests in progress in this process;
  beyond it a request is answered 429 + Retry-After at once instead of queueing into collapse.
  The bound adapts (:class:`AdaptiveLimit`, AIMD on latency) between a floor and ``max_inflight``
  so admitted requests keep a bounded latency when capacity drops (a slow disk, a busy host).
  Event streams (SSE) are long-lived and counted against their own fixed bound. A request's
  latency is measured from when its body has arrived: a client that uploads slowly makes its own
  request slow, not the server, and must not shrink everybody's bound.
- :class:`TenantShares`: no tenant holds more than ``tenant_share`` of either bound, so one
  tenant's slow or long requests leave the rest for the others. Counted once the tenant is known
  (verified), released when the request ends.

The tenant's own limits are the core's, the same for every door: the request rate
(:class:`agentlane.admission.RateLimiter`) and the active-run cap (enforced in the transaction that
accepts a run, :meth:`agentlane.commands.Commands.start_run`).

Refusals are counted on ``agentlane_admission_rejections_total{reason}``.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agentlane.admission import RateLimiter, TenantCounts
from agentlane.commands import BudgetCap, Commands
from agentlane.problems import problem_for
from agentlane.run_index import ActiveRunCap, RunIndex
from agentlane.store import EventStore
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
    #: The most of the in-flight and stream bounds one tenant may hold (1: no share limit).
    tenant_share: float = 0.5
    #: WebSockets one tenant may hold open on a gateway process (the gateway's door).
    max_tenant_sockets: int = 5000
    #: The most model calls and model tokens the server allows one run (recorded in its
    #: ``RunAccepted``; a ``budget`` signal cannot raise a run past them).
    max_model_calls: int = 50
    max_run_tokens: int = 2_000_000
    #: Wall time after which an unfinished run is cancelled (a day: runs may wait on people).
    max_run_seconds: float = 86_400.0
    #: What one run's priced model calls may cost, in millionths of the price table's currency.
    max_run_cost_micros: int = 0
    #: Per tenant, the fields above it has its own values of (``AGENTLANE_CMD_TENANT_LIMITS``).
    tenants: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    #: The models a run may choose (``options.model``); empty: runs take the runners' model.
    run_models: tuple[str, ...] = ()

    def for_tenant(self, tenant: str) -> Limits:
        """The limits of ``tenant``: its overrides over the defaults."""
        return replace(self, **self.tenants.get(tenant, {}))  # type: ignore[arg-type]

    def budget_cap(self) -> BudgetCap:
        return BudgetCap(
            self.max_model_calls, self.max_run_tokens, self.max_run_seconds,
            self.max_run_cost_micros,
        )

    def active_run_cap(self) -> ActiveRunCap:
        return ActiveRunCap(self.max_active_runs, self.retry_after_s)

    def rate_limiter(self) -> RateLimiter:
        """The per-tenant request rate of a process, for every door it serves."""
        own = {t: self.for_tenant(t) for t in self.tenants}
        overrides = {t: (limits.rate_per_s, limits.burst) for t, limits in own.items()}
        return RateLimiter(rate_per_s=self.rate_per_s, burst=self.burst, overrides=overrides)

    def commands(self, store: EventStore, runs: RunIndex) -> Commands:
        """Commands that accept runs under these caps, each tenant's own where it has them."""
        own = {t: self.for_tenant(t) for t in self.tenants}
        tenant_caps = {t: (lim.active_run_cap(), lim.budget_cap()) for t, lim in own.items()}
        return Commands(
            store, runs, cap=self.active_run_cap(), budget_cap=self.budget_cap(),
            tenant_caps=tenant_caps, run_models=self.run_models,
        )


class _Overloaded(TooManyRequests):
    slug = "overloaded"

    def __init__(self, *, retry_after_s: float) -> None:
        super().__init__(
            "the server is at capacity; retry later", retry_after_s=retry_after_s,
            reason="inflight",
        )


def _is_stream(scope: Scope) -> bool:
    """A request for ``GET /sessions/{id}/events`` as server-sent events (the only stream): the
    Accept header alone on another route is an ordinary request."""
    if scope.get("method") != "GET" or not _STREAM_PATH.fullmatch(scope.get("path", "")):
        return False
    for name, value in scope.get("headers", ()):
        if name == b"accept" and b"text/event-stream" in value:
            return True
    return False


_STREAM_PATH = re.compile(r"/sessions/[^/]+/events")
#: Where a request's tenant is recorded (``scope["state"]``) once it holds a share.
_TENANT_SLOT = "agentlane.tenant_slot"


class TenantShares:
    """Per tenant, the requests and streams it has in progress, each kept within ``share`` of the
    instance's bound at the time (never below one, so every tenant can always make a request)."""

    def __init__(self, *, share: float, retry_after_s: float) -> None:
        self.share = share
        self.retry_after_s = retry_after_s
        self.requests = TenantCounts()
        self.streams = TenantCounts()
        self.bounds: tuple[int, int] = (0, 0)  # (in-flight, streams) of the instance, kept live

    def enter(self, tenant: str, scope: Scope) -> None:
        """Count this request for ``tenant``, or raise TooManyRequests when over its share."""
        stream = _is_stream(scope)
        counts = self.streams if stream else self.requests
        bound = self.bounds[1 if stream else 0]
        held = counts.held(tenant)
        if 0 < self.share < 1 and bound > 0 and held >= max(1, math.floor(bound * self.share)):
            what = "event streams" if stream else "requests in progress"
            raise TooManyRequests(
                f"this tenant holds its share of this instance's {what}; retry later",
                retry_after_s=self.retry_after_s,
                reason="tenant_streams" if stream else "tenant_inflight",
            )
        counts.add(tenant)
        scope.setdefault("state", {})[_TENANT_SLOT] = (tenant, stream)

    def leave(self, scope: Scope) -> None:
        slot = scope.get("state", {}).pop(_TENANT_SLOT, None)
        if slot is None:
            return
        tenant, stream = slot
        (self.streams if stream else self.requests).remove(tenant)


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

    def __init__(
        self,
        app: ASGIApp,
        *,
        limits: Limits,
        metrics: CommandServiceMetrics,
        shares: TenantShares,
    ) -> None:
        self.app = app
        self._metrics = metrics
        self.adaptive = AdaptiveLimit(
            ceiling=limits.max_inflight, target_s=limits.latency_target_s
        )
        self.max_streams = limits.max_streams
        self.shares = shares
        shares.bounds = (self.adaptive.current, self.max_streams)
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
                self.shares.leave(scope)
                self._metrics.streams.dec()
                self.streams -= 1
            return
        self.inflight += 1
        self._metrics.inflight.inc()
        # The clock starts when the body has arrived (or at once when there is none).
        started = time.monotonic()

        async def timed_receive() -> Message:
            nonlocal started
            message = await receive()
            if message["type"] == "http.request" and not message.get("more_body", False):
                started = time.monotonic()
            return message

        async def timed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                now = time.monotonic()
                self.adaptive.observe(now - started, now)
                self._metrics.admission_limit.set(self.adaptive.current)
                self.shares.bounds = (self.adaptive.current, self.max_streams)
            await send(message)

        try:
            await self.app(scope, timed_receive, timed_send)
        finally:
            self.shares.leave(scope)
            self._metrics.inflight.dec()
            self.inflight -= 1
