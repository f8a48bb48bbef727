"""Work discovery and dispatch: which runs of the owned shards to advance now, and how many at once.

Discovery reads ``run_index``: for each session only the head run (lowest ``accepted_seq`` still
indexed) is eligible, and only once its ``wake_at`` has come (database time), so a session's runs
execute one at a time in order. Due runs are taken in turns across tenants (a tenant's runs in
flight here count towards its turn), so a tenant with 10,000 queued runs does not delay another's
one by more than a dispatch round. Admission is a bound on concurrent advances, and a smaller one
per tenant: a burst waits in ``run_index`` instead of exhausting memory or the pool. Each advance
is one task owned by the runner's task group; the dispatcher can wake it (a command arrived),
stop it (drain, handback: finish the step in flight) or cancel it (the lease is gone: stop at
once).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from agentlane.backoff import Backoff
from agentlane.errors import FencedOut, StoreUnavailable
from agentlane.leases import Fence
from agentlane.logs import log_context
from agentlane.run_index import DueRun, RunIndex, ShardProgress
from agentlane.store import EventStore
from runners.api import Outcome, RunExecutor, WorkflowUnavailable
from runners.metrics import RunnerMetrics

logger = logging.getLogger(__name__)

#: Called when an advance learns that a shard's lease is gone: (shard_id, lease_token, why).
LeaseLost = Callable[[int, int, str], None]
#: Called when an advance of a shard returned an outcome: the shard makes progress.
Progressed = Callable[[int], None]

# After an advance ended without finishing the run, do not pick the same run again sooner than
# this: an executor that returns while its index row still says "due" must not spin the loop.
_REDISPATCH_PAUSE_S = 0.05


@dataclass(eq=False)
class _Advance:
    run: DueRun
    fence: Fence
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    commands_seen: int = 0


class Dispatcher:
    """Advances due runs of the shards the runner hands it, within an admission bound."""

    def __init__(
        self,
        run_index: RunIndex,
        store: EventStore,
        executor: RunExecutor,
        *,
        metrics: RunnerMetrics,
        max_concurrent_runs: int,
        max_runs_per_tenant: int | None = None,
        on_lease_lost: LeaseLost,
        on_progress: Progressed,
        changed: asyncio.Event,
    ) -> None:
        self._run_index = run_index
        self._store = store
        self._executor = executor
        self._metrics = metrics
        self.max_concurrent_runs = max_concurrent_runs
        self.max_runs_per_tenant = max_runs_per_tenant or max_concurrent_runs
        self._on_lease_lost = on_lease_lost
        self._on_progress = on_progress
        self._advances: dict[str, _Advance] = {}
        self._not_before: dict[str, float] = {}
        self._failures: dict[str, Backoff] = {}
        #: Runs of the owned shards this process cannot run: execution -> (shard, workflow,
        #: version, reason). They stay due for a runner that can; the gauge makes them visible.
        self._unrunnable: dict[str, tuple[int, str, str, str]] = {}
        self._reported_unrunnable: set[tuple[str, str, str]] = set()
        # Set whenever an advance returns: the session's next run may be due now.
        self._changed = changed

    # --- state ------------------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        return len(self._advances)

    @property
    def free_slots(self) -> int:
        return max(0, self.max_concurrent_runs - len(self._advances))

    def running_by_tenant(self) -> dict[str, int]:
        running: dict[str, int] = {}
        for advance in self._advances.values():
            running[advance.run.tenant_id] = running.get(advance.run.tenant_id, 0) + 1
        return running

    def in_flight_on(self, shard_id: int) -> list[str]:
        return [ex for ex, adv in self._advances.items() if adv.fence.shard_id == shard_id]

    def _excluded(self) -> list[str]:
        now = time.monotonic()
        for execution_id in [ex for ex, until in self._not_before.items() if until <= now]:
            del self._not_before[execution_id]
        return [*self._advances, *self._not_before]

    # --- discovery ----------------------------------------------------------------------------

    async def find_due(self, fences: Mapping[int, Fence], limit: int) -> list[DueRun]:
        """Head runs of the given shards that are due now, not already running, in turns across
        tenants (see the module docstring)."""
        return await self._run_index.find_due(
            list(fences), busy=self._excluded(), limit=limit,
            running=self.running_by_tenant(), per_tenant=self.max_runs_per_tenant,
        )

    async def progress(self, shards: list[int]) -> Mapping[int, ShardProgress]:
        """Per shard: the age of its oldest due, unhandled work and the time to its next timer."""
        return await self._run_index.progress(shards, busy=self._excluded())

    # --- advancing ----------------------------------------------------------------------------

    def launch(self, group: asyncio.TaskGroup, run: DueRun, fence: Fence) -> bool:
        """Start advancing ``run`` under ``fence`` unless it runs already or admission is full."""
        if run.execution_id in self._advances or self.free_slots == 0:
            return False
        advance = _Advance(run=run, fence=fence)
        self._advances[run.execution_id] = advance
        advance.task = group.create_task(
            self._advance(advance), name=f"advance:{run.execution_id}"
        )
        self._metrics.runs_in_flight.set(len(self._advances))
        return True

    async def _advance(self, advance: _Advance) -> None:
        run = advance.run
        with log_context(tenant=run.tenant_id, session=run.session_id, execution=run.execution_id):
            try:
                outcome = await self._executor.advance(
                    run, advance.fence, wake=advance.wake, stop=advance.stop
                )
            except FencedOut as exc:
                self._fenced(advance, str(exc))
            except WorkflowUnavailable as exc:
                delay = self._retry_later(run.execution_id)
                if run.execution_id not in self._unrunnable:
                    logger.error("%s; nothing written, the run waits (retry in %.1fs)", exc, delay)
                self._set_unrunnable(
                    run, (run.shard_id, exc.workflow, str(exc.version), exc.reason)
                )
            except StoreUnavailable as exc:
                self._metrics.database_errors.labels("advance").inc()
                delay = self._retry_later(run.execution_id)
                logger.warning(
                    "advance failed, database unavailable; retry in %.1fs: %s", delay, exc
                )
            except asyncio.CancelledError:
                logger.info("advance cancelled (shard %d let go)", run.shard_id)
                raise
            except Exception:
                delay = self._retry_later(run.execution_id)
                logger.exception("advance failed; retry in %.1fs", delay)
            else:
                self._metrics.advances.labels(outcome.value).inc()
                self._failures.pop(run.execution_id, None)
                self._set_unrunnable(run, None)
                self._on_progress(run.shard_id)
                if outcome is Outcome.FENCED:
                    self._fenced(advance, "the executor reported a fenced append")
                elif outcome in (Outcome.SUSPENDED, Outcome.SLEEPING):
                    self._not_before[run.execution_id] = time.monotonic() + _REDISPATCH_PAUSE_S
            finally:
                self._advances.pop(run.execution_id, None)
                self._metrics.runs_in_flight.set(len(self._advances))
                self._changed.set()

    def _set_unrunnable(self, run: DueRun, what: tuple[int, str, str, str] | None) -> None:
        if what is None:
            if self._unrunnable.pop(run.execution_id, None) is None:
                return
        else:
            self._unrunnable[run.execution_id] = what
        self._publish_unrunnable()

    def forget_shard(self, shard_id: int) -> None:
        """The shard is no longer ours: its unrunnable runs are another runner's to report."""
        gone = [ex for ex, (shard, *_) in self._unrunnable.items() if shard == shard_id]
        for execution_id in gone:
            del self._unrunnable[execution_id]
        if gone:
            self._publish_unrunnable()

    def _publish_unrunnable(self) -> None:
        counts: dict[tuple[str, str, str], int] = {}
        for _, workflow, version, reason in self._unrunnable.values():
            counts[workflow, version, reason] = counts.get((workflow, version, reason), 0) + 1
        gauge = self._metrics.runs_unrunnable
        for gone in self._reported_unrunnable - counts.keys():
            gauge.labels(*gone).set(0)
        for key, count in counts.items():
            gauge.labels(*key).set(count)
        self._reported_unrunnable = set(counts)

    def _fenced(self, advance: _Advance, why: str) -> None:
        self._metrics.fenced_appends.inc()
        fence = advance.fence
        self._on_lease_lost(fence.shard_id, fence.token, f"append rejected by the fence: {why}")

    def _retry_later(self, execution_id: str) -> float:
        backoff = self._failures.setdefault(execution_id, Backoff(initial_s=0.5, maximum_s=30.0))
        delay = max(_REDISPATCH_PAUSE_S, backoff.next_delay())
        self._not_before[execution_id] = time.monotonic() + delay
        return delay

    # --- control ------------------------------------------------------------------------------

    def stop_shard(self, shard_id: int) -> list[asyncio.Task[None]]:
        """Ask the shard's advances to finish their step in flight and return; their tasks."""
        tasks = []
        for advance in self._advances.values():
            if advance.fence.shard_id == shard_id:
                advance.stop.set()
                if advance.task is not None:
                    tasks.append(advance.task)
        return tasks

    def cancel_shard(self, shard_id: int) -> int:
        """Cancel the shard's advances at once (the lease is gone); how many were cancelled."""
        cancelled = 0
        for advance in list(self._advances.values()):
            if advance.fence.shard_id == shard_id and advance.task is not None:
                advance.task.cancel()
                cancelled += 1
        return cancelled

    def cancel_all(self) -> None:
        for advance in self._advances.values():
            if advance.task is not None:
                advance.task.cancel()

    async def wake_commanded(self, shard_ids: set[int] | None = None) -> None:
        """Set ``wake`` on advances of ``shard_ids`` (all when None) whose run got a command
        (cancel, signal) since they started: the journal, not the NOTIFY, says which."""
        advances = [
            a
            for a in self._advances.values()
            if shard_ids is None or a.fence.shard_id in shard_ids
        ]
        if not advances:
            return
        latest = await self._store.latest_commands([a.run.execution_id for a in advances])
        for advance in advances:
            seen = latest.get(advance.run.execution_id, 0)
            if seen > advance.commands_seen:
                advance.commands_seen = seen
                advance.wake.set()
