"""The command service as a :class:`agentlane.service.Component`: its routes, its readiness probe
(database reachable, migrations applied, shard count agreed) and its one LISTEN connection."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from prometheus_client import CollectorRegistry
from starlette.routing import BaseRoute, Route

from agentlane.admission import RateLimiter
from agentlane.auth import Authenticator
from agentlane.blobs import Blobs
from agentlane.db import Database
from agentlane.errors import AgentlaneError
from agentlane.leases import check_recorded_shard_count
from agentlane.migrate import pending
from agentlane.readmodels import ReadModels
from agentlane.readmodels.tables import READ_MODELS_CHECKPOINT
from agentlane.run_index import RunIndex
from agentlane.store import EventStore, Tail
from command_service.admission import Limits, TenantShares
from command_service.app import Dependencies, build_app
from command_service.metrics import CommandServiceMetrics
from command_service.ops import OpsReader, RunnerRows
from command_service.reads import RunReader, UsageReader
from command_service.sse import WakeBroadcast

log = logging.getLogger(__name__)

READY_PROBE_EVERY_S = 2.0


class CommandService:
    """Serves the command API. Owns its background tasks, not the database."""

    name = "command-service"

    def __init__(
        self,
        *,
        db: Database,
        shards: int,
        authenticator: Authenticator,
        limits: Limits | None = None,
        rate: RateLimiter | None = None,
        registry: CollectorRegistry | None = None,
        runners: RunnerRows | None = None,
        checkpoints: Sequence[str] = (READ_MODELS_CHECKPOINT,),
        blobs: Blobs | None = None,
    ) -> None:
        """``runners``: the runner component's read of its registry, for the operations
        overview (its composition root hands it in; without it the overview lists no runners);
        ``checkpoints``: the projector checkpoints that move here (``publish`` on pubsub);
        ``blobs``: where large values of the events it writes go, and ``GET /blobs`` reads."""
        self._db = db
        self.store = EventStore(db, shards=shards, blobs=blobs)
        self.run_index = RunIndex(db)
        self.limits = limits or Limits()
        self.commands = self.limits.commands(self.store, self.run_index)
        self.read_models = ReadModels(db)
        self.authenticator = authenticator
        self.metrics = CommandServiceMetrics(registry or CollectorRegistry())
        self.broadcast = WakeBroadcast()
        self.runs = RunReader(self.store, self.read_models, use_read_model=False)
        self._ready = False
        self._migrated = False
        self._draining = False
        self._stack = contextlib.AsyncExitStack()
        self.app = build_app(
            Dependencies(
                store=self.store,
                commands=self.commands,
                run_index=self.run_index,
                authenticator=authenticator,
                limits=self.limits,
                rate=rate or self.limits.rate_limiter(),
                shares=TenantShares(
                    share=self.limits.tenant_share, retry_after_s=self.limits.retry_after_s
                ),
                runs=self.runs,
                usage=UsageReader(self.read_models),
                ops=OpsReader(db, runners=runners, checkpoints=checkpoints),
                broadcast=self.broadcast,
                metrics=self.metrics,
            )
        )

    async def __aenter__(self) -> CommandService:
        await self._probe()
        wakeups = await self._stack.enter_async_context(Tail(self._db).wakeups())
        group = await self._stack.enter_async_context(asyncio.TaskGroup())
        tasks = [
            group.create_task(self.broadcast.pump(wakeups), name="command-wakeups"),
            group.create_task(self._probe_forever(), name="command-readiness"),
        ]
        # Runs before the group's exit (LIFO), which then awaits the cancelled tasks.
        self._stack.callback(lambda: [task.cancel() for task in tasks])
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._stack.aclose()

    def routes(self) -> Sequence[BaseRoute]:
        # Every method reaches the API app, so its router answers 405 as problem+json.
        return [
            Route(route.path, self.app, methods=None)
            for route in self.app.routes
            if isinstance(route, Route)
        ]

    def is_ready(self) -> bool:
        return self._ready and not self._draining

    async def drain(self) -> None:
        # Requests in flight finish within uvicorn's graceful shutdown; event streams end now so
        # their clients reconnect (with Last-Event-ID) to an instance that is staying.
        self._draining = True
        self.broadcast.close()

    async def _probe_forever(self) -> None:
        while True:
            await asyncio.sleep(READY_PROBE_EVERY_S)
            await self._probe()

    async def _probe(self) -> None:
        try:
            await check_recorded_shard_count(self._db, self.store.shards)
            # Applied migrations stay applied: once current, only reachability is re-checked.
            if not self._migrated:
                missing = await asyncio.to_thread(pending, self._db.conninfo)
                if missing:
                    self._set_ready(False, f"{len(missing)} migrations not applied")
                    return
                self.runs.use_read_model = await self.read_models.exist()
                self._migrated = True
                log.info(
                    "GET /runs reads %s",
                    "the read model when fresh, else folds" if self.runs.use_read_model
                    else "folds (no read model in this database)",
                )
        except AgentlaneError as exc:
            self._set_ready(False, f"database check failed: {exc}")
            return
        self._set_ready(True, "ready")

    def _set_ready(self, ready: bool, why: str) -> None:
        if ready != self._ready:
            (log.info if ready else log.warning)("readiness: %s", why)
        self._ready = ready
