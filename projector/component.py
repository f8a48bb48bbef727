"""The projector as a Component: lease, read-model follower, publish follower and metrics.

While it holds the projector lease the projector runs two followers of the gap-safe log, each from
its own checkpoint: the read models (tables + checkpoint in one fenced transaction: exactly-once)
and, on the ``pubsub`` bus, publishing (publish, await every future, then move the checkpoint:
at-least-once). Without the lease it waits and re-claims; losing it (a renewal refused, its local
deadline passed, a batch's fence refused) stops both at once. Metrics are refreshed whether or not
this process leads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from agentlane import telemetry
from agentlane.backoff import Backoff
from agentlane.db import Database
from agentlane.errors import FencedOut, StoreError
from agentlane.events import TERMINAL_TYPES
from agentlane.leases import PROJECTOR_LEASE, Fence, Lease, Leases, check_fence
from agentlane.readmodels import READ_MODELS_CHECKPOINT, apply_events
from agentlane.records import Checkpoint, TailedEvent
from agentlane.store import Checkpoints, EventStore, Follower, HorizonWatch, Tail
from projector.errors import PublishFailed
from projector.metrics import ProjectorMetrics
from projector.publish_heads import PublishHeads
from projector.publisher import EventPublisher

logger = logging.getLogger(__name__)

#: The checkpoint of the publish follower (the read models' is ``READ_MODELS_CHECKPOINT``).
PUBLISH_CHECKPOINT = "publish"
#: The key of the one row of ``projector_lease``.
LEASE_KEY = "projector"
#: The metric's token kinds and the Usage fields they come from.
_TOKEN_KINDS = (
    ("input", "inputTokens"), ("output", "outputTokens"), ("cached_input", "cachedInputTokens")
)


@dataclass(frozen=True, slots=True)
class ProjectorOptions:
    lease_ttl_s: float = 10.0
    batch_size: int = 1000
    #: Longest sleep between tail reads when no NOTIFY arrives.
    poll_s: float = 1.0
    metrics_interval_s: float = 1.0
    #: Log a warning while the oldest running transaction is older than this.
    horizon_warning_s: float = 30.0


class Projector:
    """See the module docstring. ``publisher`` None = the ``postgres`` bus (no fan-out)."""

    name = "projector"

    def __init__(
        self,
        *,
        db: Database,
        holder: str,
        publisher: EventPublisher | None = None,
        options: ProjectorOptions | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self._db = db
        self.publisher = publisher
        self.options = options or ProjectorOptions()
        self.metrics = ProjectorMetrics(registry or CollectorRegistry())
        self._store = EventStore(db, shards=1)  # reads only; the count matters to fenced appends
        self._tail = Tail(db)
        self._horizon = HorizonWatch(db)
        self._checkpoints = Checkpoints(db)
        self._heads = PublishHeads(db, self._store)
        self._leases = Leases(db, PROJECTOR_LEASE, holder=holder, ttl_s=self.options.lease_ttl_s)
        #: The projector lease while this process leads.
        self.lease: Lease | None = None
        self.applied = 0
        self.published = 0
        self.publish_errors = 0
        self._group: asyncio.TaskGroup | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._draining = False

    @property
    def holder(self) -> str:
        return self._leases.holder

    # --- Component ----------------------------------------------------------------------------

    async def __aenter__(self) -> Projector:
        if self.publisher is not None:
            await self.publisher.__aenter__()
        self._group = asyncio.TaskGroup()
        await self._group.__aenter__()
        self._tasks = [
            self._group.create_task(self._lead_forever(), name="projector-lead"),
            self._group.create_task(self._refresh_metrics(), name="projector-metrics"),
        ]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for task in self._tasks:
            task.cancel()
        if self._group is not None:
            await self._group.__aexit__(None, None, None)
        await self._release()
        if self.publisher is not None:
            await self.publisher.__aexit__(None, None, None)

    def routes(self) -> Sequence[BaseRoute]:
        return [Route("/projector/status", self._status)]

    def is_ready(self) -> bool:
        return bool(self._tasks) and not any(t.done() for t in self._tasks)

    async def drain(self) -> None:
        """Stop leading and hand the lease back, so a standby takes over without waiting."""
        self._draining = True
        if self._tasks:
            self._tasks[0].cancel()
            await asyncio.wait([self._tasks[0]])
        await self._release()

    async def _status(self, _: Request) -> Response:
        lease = self.lease
        return JSONResponse(
            {
                "holder": self.holder,
                "leader": lease is not None,
                "token": lease.token if lease is not None else None,
                "applied": self.applied,
                "published": self.published,
                "publishErrors": self.publish_errors,
            }
        )

    # --- leadership ---------------------------------------------------------------------------

    async def _lead_forever(self) -> None:
        backoff = Backoff(initial_s=0.2, maximum_s=5.0)
        wait_s = min(1.0, self.options.lease_ttl_s / 4)
        while not self._draining:
            try:
                claimed = await self._leases.claim(1, keys=[LEASE_KEY])
            except StoreError as exc:
                logger.warning("cannot reach the database to claim the lease: %s", exc)
                await backoff.sleep()
                continue
            if not claimed:
                await asyncio.sleep(wait_s)
                continue
            backoff.reset()
            self.lease = claimed[0]
            logger.info("projector lease claimed (token %s)", self.lease.token)
            self.metrics.is_leader.set(1)
            try:
                async with asyncio.TaskGroup() as group:
                    group.create_task(self._renew())
                    group.create_task(self._follow_read_models())
                    if self.publisher is not None:
                        group.create_task(self._publish(self.publisher))
            except* FencedOut as lost:
                logger.warning("lost the projector lease: %s", lost.exceptions[0])
                self.lease = None
            except* Exception as failed:
                logger.error("projector loop failed; re-claiming after a pause",
                             exc_info=failed.exceptions[0])
                await self._release()
                await backoff.sleep()
            finally:
                # Cancelled (drain, exit): the lease stays held until drain() hands it back.
                self.metrics.is_leader.set(0)

    async def _renew(self) -> None:
        ttl = self.options.lease_ttl_s
        while True:
            await asyncio.sleep(ttl / 3)
            lease = self._held()
            try:
                # Bounded, so a database that hangs meets the deadline check below.
                async with asyncio.timeout(ttl / 3):
                    renewed = await self._leases.renew([lease])
            except (StoreError, TimeoutError) as exc:
                # Without the database no batch can commit either; give up before expiry.
                if time.monotonic() > lease.deadline - ttl / 3:
                    raise lease.fence.refused() from exc
                logger.warning("lease renewal failed, retrying: %s", exc)
                continue
            if LEASE_KEY not in renewed:
                raise lease.fence.refused()
            self.lease = renewed[LEASE_KEY]

    async def _release(self) -> None:
        lease = self.lease
        if lease is None:
            return
        with contextlib.suppress(StoreError):
            await self._leases.release([lease])
            logger.info("projector lease released (token %s)", lease.token)
        # Forgotten only once the release returned: a drain cut short mid-release leaves it for
        # __aexit__ to release again, rather than for a standby to wait out.
        self.lease = None

    def _held(self) -> Lease:
        assert self.lease is not None, "the followers run only while this process leads"
        return self.lease

    def _fence(self) -> Fence:
        return self._held().fence

    # --- the read models ----------------------------------------------------------------------

    async def _follow_read_models(self) -> None:
        await Follower(
            self._tail,
            self._apply,
            name="read models",
            resume=self._checkpoints.resume(READ_MODELS_CHECKPOINT),
            batch_size=self.options.batch_size,
            poll_s=self.options.poll_s,
            backoff=Backoff(initial_s=0.1, maximum_s=5.0),
        ).run()

    async def _apply(self, batch: list[TailedEvent], after: Checkpoint) -> None:
        events = [t.event for t in batch]
        started = telemetry.now_ns()
        async with self._db.transaction() as conn:
            await check_fence(conn, self._fence())
            await Checkpoints.advance(conn, READ_MODELS_CHECKPOINT, after, batch[-1].position)
            applied = await apply_events(conn, self._store, events)
        telemetry.record_spans(
            "agentlane.projector", "project events", (e.trace for e in events), started,
            attributes={"agentlane.batch_events": len(events)},
        )
        self.applied += applied
        self.metrics.batch_size.labels(READ_MODELS_CHECKPOINT).observe(len(batch))
        self.metrics.events.labels(READ_MODELS_CHECKPOINT).inc(applied)
        for event in events:
            if event.type in TERMINAL_TYPES:
                self.metrics.runs_finished.labels(event.type).inc()
            elif event.type == "Usage":
                self._count_tokens(event.data)

    def _count_tokens(self, usage: dict[str, Any]) -> None:
        for kind, key in _TOKEN_KINDS:
            if tokens := usage.get(key):
                self.metrics.model_tokens.labels(usage["model"], kind).inc(tokens)
        if cost := usage.get("costMicros"):
            self.metrics.model_cost.labels(usage["model"]).inc(cost)

    # --- publishing ---------------------------------------------------------------------------

    async def _publish(self, publisher: EventPublisher) -> None:
        if publisher.create_topic:
            with contextlib.suppress(PublishFailed):
                await publisher.ensure_topic()

        async def publish(batch: list[TailedEvent], after: Checkpoint) -> None:
            ordered = await self._heads.order([t.event for t in batch])
            started = telemetry.now_ns()
            await publisher.publish(ordered)
            telemetry.record_spans(
                "agentlane.projector", "publish events", (e.trace for e in ordered), started,
                attributes={"agentlane.batch_events": len(ordered)},
            )
            async with self._db.transaction() as conn:
                await check_fence(conn, self._fence())
                await Checkpoints.advance(conn, PUBLISH_CHECKPOINT, after, batch[-1].position)
                await PublishHeads.save(conn, ordered)
            self.published += len(ordered)
            self.metrics.published.inc(len(ordered))
            self.metrics.batch_size.labels(PUBLISH_CHECKPOINT).observe(len(batch))
            self.metrics.events.labels(PUBLISH_CHECKPOINT).inc(len(ordered))

        def failed(exc: BaseException) -> None:
            if isinstance(exc, PublishFailed):
                self.publish_errors += 1
                self.metrics.publish_errors.inc()

        await Follower(
            self._tail,
            publish,
            name="publish",
            resume=self._checkpoints.resume(PUBLISH_CHECKPOINT),
            batch_size=self.options.batch_size,
            poll_s=self.options.poll_s,
            backoff=Backoff(initial_s=0.2, maximum_s=10.0),
            retry_on=(StoreError, PublishFailed),
            on_failure=failed,
        ).run()

    # --- metrics ------------------------------------------------------------------------------

    async def _refresh_metrics(self) -> None:
        warned_at = 0.0
        names = [READ_MODELS_CHECKPOINT] + ([PUBLISH_CHECKPOINT] if self.publisher else [])
        while True:
            try:
                for name in names:
                    position = await self._checkpoints.position(name, lag_cap=100_000)
                    self.metrics.lag_events.labels(name).set(position.lag_events)
                    self.metrics.lag_seconds.labels(name).set(position.lag_s)
                horizon = await self._horizon.age_s()
                self.metrics.horizon_age.set(horizon)
                if horizon > self.options.horizon_warning_s and time.monotonic() - warned_at > 30:
                    warned_at = time.monotonic()
                    logger.warning(
                        "a transaction has been open for %.0fs: every gap-safe reader "
                        "(projector, postgres bus) is held behind it", horizon,
                    )
            except StoreError as exc:
                logger.debug("metrics refresh failed: %s", exc)
            await asyncio.sleep(self.options.metrics_interval_s)
