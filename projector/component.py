"""The projector as a Component: lease, read-model loop, publish loop and metrics.

While it holds the leader lease the projector runs two independent tailers over the gap-safe log,
each from its own checkpoint: the read-model loop (tables + checkpoint in one fenced transaction:
exactly-once) and, on the ``pubsub`` bus, the publish loop (publish, await every future, then move
the checkpoint: at-least-once). Without the lease it waits and re-claims; losing it stops both
loops at once. Metrics are refreshed whether or not this process leads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from psycopg.rows import tuple_row
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from agentlane.bus.ordering import in_seq_order
from agentlane.db import Backoff, translate_errors
from agentlane.errors import StoreError
from agentlane.events import TERMINAL_TYPES
from agentlane.readmodel import PUBLISH_CHECKPOINT, READ_MODELS_CHECKPOINT, projector_position
from agentlane.records import Checkpoint, StoredEvent, TailedEvent
from agentlane.store import EventStore, Wakeups
from projector import metrics
from projector.checkpoint import advance_checkpoint, load_checkpoint
from projector.errors import CheckpointMoved, LostLeadership, PublishFailed
from projector.lease import LeaderLease
from projector.publisher import EventPublisher
from projector.readmodels import apply_events

logger = logging.getLogger(__name__)


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
        store: EventStore,
        database_url: str,
        holder: str,
        publisher: EventPublisher | None = None,
        options: ProjectorOptions | None = None,
    ) -> None:
        self.store = store
        self.database_url = database_url
        self.publisher = publisher
        self.options = options or ProjectorOptions()
        self.lease = LeaderLease(store.pool, holder=holder, ttl_s=self.options.lease_ttl_s)
        self.leading = False
        self.published = 0
        self.applied = 0
        self.publish_errors = 0
        self._group: asyncio.TaskGroup | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._draining = False

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
        with contextlib.suppress(StoreError):
            await self.lease.release()
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
            with contextlib.suppress(asyncio.CancelledError):
                await self._tasks[0]
        with contextlib.suppress(StoreError):
            await self.lease.release()

    async def _status(self, _: Request) -> Response:
        return JSONResponse(
            {
                "holder": self.lease.holder,
                "leader": self.leading,
                "token": self.lease.token,
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
                token = await self.lease.try_claim()
            except StoreError as exc:
                logger.warning("cannot reach the database to claim the lease: %s", exc)
                await backoff.sleep()
                continue
            if token is None:
                await asyncio.sleep(wait_s)
                continue
            backoff.reset()
            self.leading = True
            metrics.IS_LEADER.set(1)
            try:
                async with asyncio.TaskGroup() as group:
                    group.create_task(self._renew())
                    group.create_task(self._project())
                    if self.publisher is not None:
                        group.create_task(self._publish(self.publisher))
            except* LostLeadership as lost:
                logger.warning("lost the projector lease: %s", lost.exceptions[0])
            except* Exception as failed:
                logger.error("projector loop failed; re-claiming after a pause",
                             exc_info=failed.exceptions[0])
                with contextlib.suppress(StoreError):
                    await self.lease.release()
                await backoff.sleep()
            finally:
                self.leading = False
                metrics.IS_LEADER.set(0)

    async def _renew(self) -> None:
        ttl = self.options.lease_ttl_s
        valid_until = time.monotonic() + ttl
        while True:
            await asyncio.sleep(ttl / 3)
            try:
                await self.lease.renew()
                valid_until = time.monotonic() + ttl
            except StoreError as exc:
                # Without the database no batch can commit either; give up before expiry.
                if time.monotonic() > valid_until - ttl / 3:
                    raise LostLeadership(self.lease.holder, self.lease.token or 0) from exc
                logger.warning("lease renewal failed, retrying: %s", exc)

    # --- the read-model loop ------------------------------------------------------------------

    async def _load(self, name: str) -> Checkpoint:
        with translate_errors():
            async with self.store.pool.connection() as conn:
                return await load_checkpoint(conn, name)

    async def _next_batch(self, wakeups: Wakeups, position: Checkpoint) -> list[TailedEvent]:
        while True:
            batch = await self.store.read_tail(position, limit=self.options.batch_size)
            if batch:
                return batch
            await wakeups.wait(self.options.poll_s)

    async def _project(self) -> None:
        backoff = Backoff(initial_s=0.1, maximum_s=5.0)
        async with Wakeups(self.database_url) as wakeups:
            checkpoint = await self._load(READ_MODELS_CHECKPOINT)
            while True:
                try:
                    batch = await self._next_batch(wakeups, checkpoint)
                    position = batch[-1].position
                    with translate_errors():
                        async with self.store.pool.connection() as conn, conn.transaction():
                            await self.lease.check(conn)
                            await advance_checkpoint(
                                conn, READ_MODELS_CHECKPOINT, checkpoint, position
                            )
                            applied = await apply_events(conn, [t.event for t in batch])
                except (CheckpointMoved, StoreError) as exc:
                    if not isinstance(exc, CheckpointMoved):
                        logger.warning("read-model batch failed, retrying: %s", exc)
                        await backoff.sleep()
                    checkpoint = await self._reload(READ_MODELS_CHECKPOINT, checkpoint)
                    continue
                backoff.reset()
                checkpoint = position
                self.applied += applied
                metrics.BATCH_SIZE.labels(READ_MODELS_CHECKPOINT).observe(len(batch))
                metrics.EVENTS.labels(READ_MODELS_CHECKPOINT).inc(applied)
                for tailed in batch:
                    if tailed.event.type in TERMINAL_TYPES:
                        metrics.RUNS_FINISHED.labels(tailed.event.type).inc()

    # --- the publish loop ---------------------------------------------------------------------

    async def _publish(self, publisher: EventPublisher) -> None:
        backoff = Backoff(initial_s=0.2, maximum_s=10.0)
        if publisher.create_topic:
            with contextlib.suppress(PublishFailed):
                await publisher.ensure_topic()
        async with Wakeups(self.database_url) as wakeups:
            checkpoint = await self._load(PUBLISH_CHECKPOINT)
            while True:
                try:
                    batch = await self._next_batch(wakeups, checkpoint)
                    position = batch[-1].position
                    ordered = await self._publish_order([t.event for t in batch])
                    await publisher.publish(ordered)
                    with translate_errors():
                        async with self.store.pool.connection() as conn, conn.transaction():
                            await self.lease.check(conn)
                            await advance_checkpoint(
                                conn, PUBLISH_CHECKPOINT, checkpoint, position
                            )
                            await _save_publish_heads(conn, ordered)
                except PublishFailed as exc:
                    self.publish_errors += 1
                    metrics.PUBLISH_ERRORS.inc()
                    logger.warning("publish failed; rewinding to the checkpoint: %s", exc)
                    await backoff.sleep()
                    checkpoint = await self._reload(PUBLISH_CHECKPOINT, checkpoint)
                    continue
                except (CheckpointMoved, StoreError) as exc:
                    logger.warning("publish batch failed, retrying: %s", exc)
                    await backoff.sleep()
                    checkpoint = await self._reload(PUBLISH_CHECKPOINT, checkpoint)
                    continue
                backoff.reset()
                checkpoint = position
                self.published += len(ordered)
                metrics.PUBLISHED.inc(len(ordered))
                metrics.BATCH_SIZE.labels(PUBLISH_CHECKPOINT).observe(len(batch))
                metrics.EVENTS.labels(PUBLISH_CHECKPOINT).inc(len(ordered))

    async def _reload(self, name: str, current: Checkpoint) -> Checkpoint:
        """Back to the stored checkpoint (a rewind), or stay put if it cannot be read now."""
        try:
            return await self._load(name)
        except StoreError:
            return current

    async def _publish_order(self, events: list[StoredEvent]) -> list[StoredEvent]:
        """Per session in seq order after its last published seq (the tail's order may differ)."""
        keys = sorted({(e.tenant_id, e.session_id) for e in events})
        with translate_errors():
            return await self._ordered_after_heads(keys, events)

    async def _ordered_after_heads(
        self, keys: list[tuple[str, str]], events: list[StoredEvent]
    ) -> list[StoredEvent]:
        async with self.store.pool.connection() as conn:
            cursor = conn.cursor(row_factory=tuple_row)
            await cursor.execute(
                "SELECT h.tenant_id, h.session_id, h.last_seq FROM projector_publish_heads h "
                "JOIN unnest(%s::text[], %s::text[]) AS k(t, s) "
                "ON h.tenant_id = k.t AND h.session_id = k.s",
                ([k[0] for k in keys], [k[1] for k in keys]),
            )
            heads = {(row[0], row[1]): int(row[2]) for row in await cursor.fetchall()}
            ordered = await in_seq_order(conn, events, heads)
        return [event for stream in ordered.values() for event in stream]

    # --- metrics ------------------------------------------------------------------------------

    async def _refresh_metrics(self) -> None:
        warned_at = 0.0
        names = [READ_MODELS_CHECKPOINT] + ([PUBLISH_CHECKPOINT] if self.publisher else [])
        while True:
            try:
                for name in names:
                    position = await projector_position(self.store.pool, name, lag_cap=100_000)
                    metrics.LAG_EVENTS.labels(name).set(position.lag_events)
                    metrics.LAG_SECONDS.labels(name).set(position.lag_s)
                horizon = await self.store.transaction_horizon_age_s()
                metrics.HORIZON_AGE.set(horizon)
                if horizon > self.options.horizon_warning_s and time.monotonic() - warned_at > 30:
                    warned_at = time.monotonic()
                    logger.warning(
                        "a transaction has been open for %.0fs: every gap-safe reader "
                        "(projector, postgres bus) is held behind it", horizon,
                    )
            except StoreError as exc:
                logger.debug("metrics refresh failed: %s", exc)
            await asyncio.sleep(self.options.metrics_interval_s)


async def _save_publish_heads(conn: Any, ordered: list[StoredEvent]) -> None:
    heads: dict[tuple[str, str], int] = {}
    for event in ordered:
        heads[(event.tenant_id, event.session_id)] = event.seq
    if not heads:
        return
    keys = sorted(heads)
    await conn.execute(
        "INSERT INTO projector_publish_heads (tenant_id, session_id, last_seq) "
        "SELECT * FROM unnest(%s::text[], %s::text[], %s::bigint[]) "
        "ON CONFLICT (tenant_id, session_id) DO UPDATE SET last_seq = EXCLUDED.last_seq",
        ([k[0] for k in keys], [k[1] for k in keys], [heads[k] for k in keys]),
    )
