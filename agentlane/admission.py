"""Per-tenant request rate, shared by every door of a process (HTTP and WebSocket), and the
per-tenant counts the doors' shares and caps are kept with.

A token bucket per tenant (requests per second, with a burst), in-process: each instance enforces
its share, so the fleet-wide rate is the per-instance rate times the instance count (Cloud Armor
rate limiting in front is the fleet-wide guard). In ``agentlane edge`` both doors hold the same
limiter, so a tenant cannot double its rate by switching doors. The active-run cap is not here: it
is the database's (:meth:`agentlane.commands.Commands.start_run`), so no door and no race can pass
it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from agentlane.errors import RateLimited


class _Bucket:
    __slots__ = ("stamp", "tokens")

    def __init__(self, tokens: float, stamp: float) -> None:
        self.tokens = tokens
        self.stamp = stamp


class RateLimiter:
    """Token bucket per tenant: ``rate_per_s`` sustained, ``burst`` at once (0 rate: off), or
    the tenant's own ``(rate_per_s, burst)`` of ``overrides``."""

    def __init__(
        self,
        *,
        rate_per_s: float,
        burst: int,
        overrides: Mapping[str, tuple[float, int]] | None = None,
        max_tenants: int = 100_000,
    ) -> None:
        self.rate_per_s = rate_per_s
        self.burst = max(1, burst)
        self._overrides = {t: (r, max(1, b)) for t, (r, b) in (overrides or {}).items()}
        self._max_tenants = max_tenants
        self._buckets: dict[str, _Bucket] = {}

    def take(self, tenant: str, *, now: float | None = None) -> None:
        """Spend one token of ``tenant``'s bucket or raise RateLimited with the wait."""
        rate, burst = self._overrides.get(tenant, (self.rate_per_s, self.burst))
        if rate <= 0:
            return
        now = time.monotonic() if now is None else now
        bucket = self._buckets.get(tenant)
        if bucket is None:
            if len(self._buckets) >= self._max_tenants:
                self._forget_full(now)
            bucket = self._buckets[tenant] = _Bucket(float(burst), now)
        bucket.tokens = min(burst, bucket.tokens + (now - bucket.stamp) * rate)
        bucket.stamp = now
        if bucket.tokens < 1.0:
            raise RateLimited(
                f"request rate over {rate:g}/s for this tenant",
                retry_after_s=(1.0 - bucket.tokens) / rate,
            )
        bucket.tokens -= 1.0

    def _forget_full(self, now: float) -> None:
        # A bucket that has refilled is indistinguishable from a new one: dropping it is free.
        full = [
            tenant
            for tenant, bucket in self._buckets.items()
            if tenant not in self._overrides
            and bucket.tokens + (now - bucket.stamp) * self.rate_per_s >= self.burst
        ]
        for tenant in full:
            del self._buckets[tenant]
        if len(self._buckets) >= self._max_tenants:
            self._buckets.clear()


class TenantCounts:
    """How many of something (requests, streams, sockets) each tenant holds right now; a tenant
    holding none has no entry, so the map stays as small as the tenants active."""

    def __init__(self) -> None:
        self._held: dict[str, int] = {}

    def held(self, tenant: str) -> int:
        return self._held.get(tenant, 0)

    def add(self, tenant: str) -> None:
        self._held[tenant] = self._held.get(tenant, 0) + 1

    def remove(self, tenant: str) -> None:
        left = self._held.get(tenant, 0) - 1
        if left > 0:
            self._held[tenant] = left
        else:
            self._held.pop(tenant, None)
