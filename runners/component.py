"""The runner Component: registers, holds its fair share of shard leases, and advances their runs.

Four background tasks, all owned by one task group:

- the lease loop (every TTL/3, or at once when a peer joins, drains or releases): heartbeat,
  renew, hand extras back, claim up to the fair share (:class:`runners.shard_plan.ShardPlan`
  decides; this shell does the I/O);
- the watchdog: stops a shard's work the moment its lease's local deadline passes without a
  renewal (the database may be unreachable; the runner keeps no lease it cannot renew);
- discovery: advances the due head runs of owned shards within the admission bound, publishes
  progress metrics and gives up shards that make no progress;
- the listener: ``agentlane_work`` (a shard has new work or a command) and ``agentlane_shards``.

Losing a lease (renewal found it gone, the fence rejected an append, the deadline passed) stops
that shard's advances at once. Handing a shard back (a peer joined, drain, a stall) first lets
the advances finish their step in flight, bounded by a grace period, then releases the lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry
from starlette.routing import BaseRoute

from agentlane.backoff import Backoff
from agentlane.blobs import blobs_from_settings
from agentlane.commands import Commands
from agentlane.db import Database, open_database, with_session_options
from agentlane.errors import StoreError, StoreUnavailable
from agentlane.leases import SHARD_LEASES, SHARDS_CHANNEL, Lease, Leases, verify_shard_count
from agentlane.notifications import Listener
from agentlane.run_index import WORK_CHANNEL, RunIndex
from agentlane.settings import Settings
from agentlane.sharding import compact_ranges
from agentlane.store import EventStore
from runners.api import RunExecutor
from runners.dispatcher import Dispatcher
from runners.membership import Membership, RunnerIdentity
from runners.metrics import RunnerMetrics
from runners.shard_plan import ShardPlan

logger = logging.getLogger(__name__)

#: Builds the executor a runner advances runs with, on its database, settings and metrics registry.
ExecutorFactory = Callable[[Database, Settings, CollectorRegistry], RunExecutor]


@dataclass(frozen=True, slots=True)
class RunnerOptions:
    """Tuning of one runner process (command-line flags of ``agentlane runner``).

    Args:
        max_concurrent_runs: admission bound; more due runs wait in ``run_index``.
        max_runs_per_tenant: of those, at most this many of one tenant (default: three quarters
            of ``max_concurrent_runs``), so another tenant's run always finds a slot.
        stall_timeout_s: a shard whose due work waits this long with no advance returning is
            given up (and not reclaimed by this runner for as long again).
        poll_interval_s: the discovery safety net when no NOTIFY arrives.
        drain_grace_s: on SIGTERM, how long in-flight steps may take before they are cancelled.
        handback_grace_s: the same when a shard is handed to a peer; default one lease TTL.
        address: where peers and operators can reach this runner (shown by ``agentlane shards``).
    """

    max_concurrent_runs: int = 64
    max_runs_per_tenant: int | None = None
    stall_timeout_s: float = 60.0
    poll_interval_s: float = 1.0
    drain_grace_s: float = 30.0
    handback_grace_s: float | None = None
    address: str = ""


class Runner:
    """``async with Runner(...)`` inside :func:`agentlane.service.run_service`."""

    name = "runner"

    def __init__(
        self,
        settings: Settings,
        executor_factory: ExecutorFactory,
        options: RunnerOptions | None = None,
        *,
        identity: RunnerIdentity | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.settings = settings
        self.options = options or RunnerOptions()
        self.identity = identity or RunnerIdentity.fresh(settings.runner_identity)
        self._executor_factory = executor_factory
        self._metrics_registry = registry or CollectorRegistry()
        self.metrics = RunnerMetrics(self._metrics_registry)
        self._ttl_s = settings.lease_ttl_s
        self._tick_s = self._ttl_s / 3
        self._handback_grace_s = self.options.handback_grace_s or self._ttl_s
        self.plan = ShardPlan(settings.shards, stall_s=self.options.stall_timeout_s)
        self._stack = contextlib.AsyncExitStack()
        self._group: asyncio.TaskGroup | None = None
        self._loops: list[asyncio.Task[Any]] = []
        self._handbacks: dict[int, asyncio.Task[None]] = {}
        self._releasing_now: set[int] = set()
        self._commanded: set[int] = set()
        self._registered = False
        self._draining = False
        self._last_renewal = time.monotonic()
        self._work = asyncio.Event()
        self._kick_leases = asyncio.Event()
        self._leases_changed = asyncio.Event()
        self._dispatcher: Dispatcher | None = None
        self._commands: Commands | None = None
        self._leases: Leases | None = None
        self._membership: Membership | None = None

    # --- Component ------------------------------------------------------------------------------

    @property
    def runner_id(self) -> str:
        return self.identity.runner_id

    def owned_shards(self) -> list[int]:
        return sorted(self.plan.leases)

    def routes(self) -> Sequence[BaseRoute]:
        return []

    def is_ready(self) -> bool:
        """Ready while registered, not draining, renewing, and holding its share (see
        :mod:`runners.shard_plan`)."""
        renewing = time.monotonic() - self._last_renewal < self._ttl_s
        return self._registered and not self._draining and renewing and self.plan.has_share

    async def __aenter__(self) -> Runner:
        settings = self.settings
        # A runner paused inside a fenced append (which holds its lease row FOR SHARE) must not
        # keep a peer from taking the shard: its sessions end after a TTL idle in a transaction.
        session_url = with_session_options(
            settings.require_database_url(),
            idle_in_transaction_session_timeout=max(1000, int(self._ttl_s * 1000)),
        )
        try:
            db = await self._stack.enter_async_context(
                open_database(
                    session_url,
                    name="runner",
                    min_size=settings.db_pool_min,
                    max_size=settings.db_pool_max,
                )
            )
            # Leases get their own small pool: renewals never queue behind busy advances.
            lease_db = await self._stack.enter_async_context(
                open_database(session_url, name="runner-leases", min_size=1, max_size=2)
            )
            await verify_shard_count(lease_db, settings.shards)
            self._leases = Leases(
                lease_db, SHARD_LEASES, holder=self.runner_id, ttl_s=self._ttl_s
            )
            self._membership = Membership(
                lease_db, self.identity, ttl_s=self._ttl_s, address=self.options.address
            )
            executor = self._executor_factory(db, settings, self._metrics_registry)
            if hasattr(executor, "__aenter__"):
                executor = await self._stack.enter_async_context(executor)  # type: ignore[arg-type]
            # The deadline sweep cancels runs the way a client would: with a command event.
            self._commands = Commands(
                EventStore(db, shards=settings.shards, blobs=blobs_from_settings(settings)),
                RunIndex(db),
            )
            self._dispatcher = Dispatcher(
                RunIndex(db),
                EventStore(db, shards=settings.shards),
                executor,
                metrics=self.metrics,
                max_concurrent_runs=self.options.max_concurrent_runs,
                max_runs_per_tenant=self.options.max_runs_per_tenant
                or max(1, self.options.max_concurrent_runs * 3 // 4),
                on_lease_lost=lambda shard, token, why: self._lease_lost(
                    shard, token, "fenced", why
                ),
                on_progress=lambda shard: self.plan.progressed(shard, time.monotonic()),
                changed=self._work,
            )
            await self._membership.register()
            self._registered = True
            self.metrics.lease_renewal_lag.set_function(
                lambda: time.monotonic() - self._last_renewal
            )
            listener = Listener(
                session_url,
                [WORK_CHANNEL, SHARDS_CHANNEL],
                on_notify=self._notified,
                on_connect=self._listener_connected,
                application_name="agentlane-runner-listen",
            )
            self._group = await self._stack.enter_async_context(asyncio.TaskGroup())
            self._loops = [
                self._group.create_task(self._lease_loop(), name="leases"),
                self._group.create_task(self._watchdog(), name="lease-watchdog"),
                self._group.create_task(self._discovery_loop(), name="discovery"),
                self._group.create_task(listener.run(), name="listener"),
            ]
        except BaseException:
            await self._stack.aclose()
            raise
        logger.info(
            "runner %s started: %d shards, lease ttl %.1fs, at most %d runs at once",
            self.runner_id, settings.shards, self._ttl_s, self.options.max_concurrent_runs,
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for task in self._loops:
            task.cancel()
        for task in self._handbacks.values():
            task.cancel()
        if self._dispatcher is not None:
            self._dispatcher.cancel_all()
        try:
            if self._group is not None:
                # Wait for the cancelled tasks while the pools are still open.
                await self._stack.aclose()
        finally:
            self._group = None
        logger.info("runner %s stopped", self.runner_id)

    async def drain(self) -> None:
        """SIGTERM: stop taking work, let in-flight steps finish, release every shard."""
        self._draining = True
        # Hand every shard back before the next await, so no lease tick picks a shorter grace.
        grace = max(0.5, self.options.drain_grace_s * 0.8)
        logger.info("draining: handing back %d shard(s) %s", len(self.plan.leases),
                    compact_ranges(self.plan.leases))
        self._hand_back_all(grace)
        self._kick_leases.set()
        assert self._membership is not None
        with contextlib.suppress(StoreError):
            await self._membership.mark_draining()
        # A claim in flight when the drain began returns leases after the first hand-back: go
        # round until nothing is held, so peers need not wait out their TTL.
        while tasks := self._hand_back_all(grace):
            await asyncio.wait(tasks)
        with contextlib.suppress(StoreError):
            await self._membership.deregister()
        self._registered = False
        logger.info("drained: every shard released")

    def _hand_back_all(self, grace_s: float) -> list[asyncio.Task[None]]:
        """Draining: hand back every shard not yet on its way; every hand-back still running."""
        for shard in self.plan.hand_back_all():
            self._hand_back(shard, "drain", "the runner is shutting down", grace_s)
        return list(self._handbacks.values())

    # --- leases ----------------------------------------------------------------------------------

    async def _lease_loop(self) -> None:
        backoff = Backoff(initial_s=0.2, maximum_s=max(0.2, self._tick_s))
        failing = False
        while True:
            self._kick_leases.clear()
            try:
                async with asyncio.timeout(max(0.5, self._ttl_s / 2)):
                    await self._lease_tick()
            except (StoreUnavailable, TimeoutError) as exc:
                self.metrics.database_errors.labels("lease").inc()
                delay = backoff.next_delay()
                if not failing:
                    logger.warning(
                        "cannot renew leases (%s); retrying with backoff", exc or "timeout"
                    )
                failing = True
            else:
                if failing:
                    logger.info("lease renewal is back")
                failing = False
                backoff.reset()
                delay = self._tick_s
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._kick_leases.wait()

    async def _lease_tick(self) -> None:
        assert self._membership is not None and self._leases is not None
        assert self._dispatcher is not None
        plan = self.plan
        beat = await self._membership.heartbeat(draining=self._draining)
        if not beat.registered and not self._draining:
            await self._membership.register()
        renewed = await self._leases.renew(list(plan.leases.values()))
        for lease in plan.renewed(renewed, releasing_now=self._releasing_now):
            self._lease_lost(lease.shard_id, lease.token, "lease_lost",
                             "renewal found the lease gone (expired or taken)")
        self._last_renewal = time.monotonic()
        self._leases_changed.set()

        dispatcher = self._dispatcher
        in_flight = {shard: len(dispatcher.in_flight_on(shard)) for shard in plan.leases}
        decision = plan.rebalance(
            live_runners=beat.live_runners, draining=self._draining, in_flight=in_flight,
            now=time.monotonic(),
        )
        self.metrics.target_shards.set(decision.target)
        if decision.hand_back:
            logger.info("handing back %d shard(s) %s: fair share is now %d",
                        len(decision.hand_back), compact_ranges(decision.hand_back),
                        decision.target)
        for shard in decision.hand_back:
            self._hand_back(shard, "handback", f"fair share is now {decision.target}",
                            self._handback_grace_s)
        if decision.claim > 0:
            claimed = await self._leases.claim(decision.claim, avoid=decision.avoid)
            plan.claimed(claimed, time.monotonic())
            if claimed:
                self.metrics.shard_claims.inc(len(claimed))
                logger.info("claimed %d shard(s) %s (tokens %s); fair share %d",
                            len(claimed), compact_ranges(lease.shard_id for lease in claimed),
                            compact_ranges(lease.token for lease in claimed), decision.target)
                self._leases_changed.set()
                self._work.set()
        plan.settle(live_runners=beat.live_runners, draining=self._draining)
        self.metrics.owned_shards.set(len(plan.leases))

    def _lease_lost(self, shard: int, token: int, reason: str, why: str) -> None:
        """Stop the shard's work at once: its lease is gone (or may be)."""
        if self.plan.lost(shard, token) is None:
            return
        handback = self._handbacks.pop(shard, None)
        if handback is not None:
            handback.cancel()
        assert self._dispatcher is not None
        cancelled = self._dispatcher.cancel_shard(shard)
        self._dispatcher.forget_shard(shard)
        self.metrics.shard_losses.labels(reason).inc()
        self.metrics.forget_shard(shard)
        self.metrics.owned_shards.set(len(self.plan.leases))
        logger.warning("dropped shard %d (token %d, %s): %s; cancelled %d advance(s)",
                       shard, token, reason, why, cancelled)
        self._leases_changed.set()
        self._kick_leases.set()

    def _hand_back(self, shard: int, reason: str, why: str, grace_s: float) -> asyncio.Task[None]:
        """Stop new work on the shard, let its steps in flight finish (bounded), release it."""
        existing = self._handbacks.get(shard)
        if existing is not None:
            return existing
        assert self._group is not None
        self.plan.handing_back(shard)
        task = self._group.create_task(
            self._release_when_idle(shard, reason, why, grace_s), name=f"release:{shard}"
        )
        self._handbacks[shard] = task
        return task

    async def _release_when_idle(self, shard: int, reason: str, why: str, grace_s: float) -> None:
        try:
            await self._release_shard(shard, reason, why, grace_s)
        finally:
            # However it ended, this hand-back is over (a newer one for the shard stays).
            if self._handbacks.get(shard) is asyncio.current_task():
                del self._handbacks[shard]

    async def _release_shard(self, shard: int, reason: str, why: str, grace_s: float) -> None:
        assert self._dispatcher is not None and self._leases is not None
        in_flight = self._dispatcher.stop_shard(shard)
        if in_flight:
            _, late = await asyncio.wait(in_flight, timeout=grace_s)
            if late:
                logger.warning("shard %d: %d advance(s) did not finish within %.1fs; cancelling",
                               shard, len(late), grace_s)
                self._dispatcher.cancel_shard(shard)
                await asyncio.wait(late)
        lease = self.plan.leases.get(shard)
        if lease is None:
            return
        self._releasing_now.add(shard)
        try:
            await self._leases.release([lease])
        except StoreError as exc:
            logger.warning(
                "shard %d: release failed (%s); the lease will expire instead", shard, exc
            )
        finally:
            self._releasing_now.discard(shard)
        self.plan.released(shard, lease)
        self._dispatcher.forget_shard(shard)
        self.metrics.forget_shard(shard)
        self.metrics.shard_losses.labels(reason).inc()
        self.metrics.owned_shards.set(len(self.plan.leases))
        # A hand-back or a drain releases many shards at once and says so in one line (above);
        # a stalled shard is news on its own.
        level = logging.WARNING if reason == "stalled" else logging.DEBUG
        logger.log(level, "released shard %d (token %d, %s): %s", shard, lease.token, reason, why)
        self._leases_changed.set()

    async def _watchdog(self) -> None:
        while True:
            self._leases_changed.clear()
            for lease in self.plan.expired(time.monotonic()):
                self._lease_lost(
                    lease.shard_id, lease.token, "lease_expired",
                    "lease time is up and it was not renewed "
                    "(database unreachable or this process was paused)",
                )
            nearest = self.plan.next_deadline()
            timeout = None if nearest is None else max(0.0, nearest - time.monotonic())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._leases_changed.wait()

    # --- discovery -------------------------------------------------------------------------------

    async def _discovery_loop(self) -> None:
        assert self._dispatcher is not None and self._group is not None
        dispatcher = self._dispatcher
        backoff = Backoff(initial_s=0.2, maximum_s=5.0)
        poll_s = self.options.poll_interval_s
        next_check = 0.0
        wake_at: float | None = None  # time.monotonic() of the next durable timer
        while True:
            self._work.clear()
            timeout = poll_s
            try:
                if self._commanded:
                    shards, self._commanded = self._commanded, set()
                    await dispatcher.wake_commanded(shards)
                fences = self.plan.active_fences(time.monotonic())
                if fences and dispatcher.free_slots:
                    for run in await dispatcher.find_due(fences, dispatcher.free_slots):
                        fence = self.plan.active_fences(time.monotonic()).get(run.shard_id)
                        if fence is not None:
                            dispatcher.launch(self._group, run, fence)
                if time.monotonic() >= next_check:
                    next_check = time.monotonic() + poll_s
                    await self._expire_overdue()
                    await dispatcher.wake_commanded()
                    next_wake_in = await self._check_progress()
                    wake_at = None if next_wake_in is None else time.monotonic() + next_wake_in
                if wake_at is not None and wake_at > time.monotonic():
                    timeout = min(poll_s, wake_at - time.monotonic() + 0.005)
                backoff.reset()
            except StoreUnavailable as exc:
                # Unavailable or read-only (a failover): retry. Any other store error ends the
                # runner, so its leases expire and a peer takes its shards, rather than holding
                # shards it cannot work.
                self.metrics.database_errors.labels("discovery").inc()
                timeout = backoff.next_delay()
                logger.warning("work discovery failed; retry in %.1fs: %s", timeout, exc)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._work.wait()

    async def _expire_overdue(self) -> None:
        """Cancel the runs of held shards whose wall-time deadline has passed (once each: the
        command clears the deadline in its own transaction)."""
        assert self._commands is not None
        fences = self.plan.active_fences(time.monotonic())
        for tenant_id, execution_id in await self._commands.runs.overdue(sorted(fences)):
            cancelled = await self._commands.expire_run(
                tenant_id=tenant_id, execution_id=execution_id
            )
            if cancelled is not None:
                self.metrics.runs_expired.inc()
                logger.info("cancelled run %s: past its wall-time deadline", execution_id,
                            extra={"tenant": tenant_id, "execution": execution_id})

    async def _check_progress(self) -> float | None:
        """Publish per-shard progress, give up stalled shards; return seconds to the next timer."""
        assert self._dispatcher is not None
        shards = sorted(self.plan.active_fences(time.monotonic()))
        progress = await self._dispatcher.progress(shards)
        for shard, state in progress.items():
            self.metrics.oldest_due_work_age.labels(str(shard)).set(state.oldest_due_age_s or 0.0)
        stalls = self.plan.stalls(progress, time.monotonic())
        for shard in stalls.give_up:
            self._hand_back(
                shard, "stalled",
                f"due work has waited {progress[shard].oldest_due_age_s:.0f}s and no run of this "
                f"shard advanced for more than the stall timeout "
                f"({self.options.stall_timeout_s:.0f}s); giving it up",
                self._handback_grace_s,
            )
        return stalls.next_wake_in_s

    # --- notifications ---------------------------------------------------------------------------

    def _notified(self, channel: str, payload: str) -> None:
        if channel == SHARDS_CHANNEL:
            self._kick_leases.set()
            return
        try:
            shard = int(payload)
        except ValueError:
            return
        if shard in self.plan.leases:
            self._commanded.add(shard)
            self._work.set()

    def _listener_connected(self) -> None:
        # Anything may have happened while we were not listening: look again.
        self._commanded.update(self.plan.leases)
        self._work.set()
        self._kick_leases.set()


__all__ = ["ExecutorFactory", "Lease", "Runner", "RunnerOptions"]
