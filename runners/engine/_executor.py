"""``advance``: load a run's journal, replay its workflow up to where it stood, run it onward.

The outcome of one advance is written in one fenced transaction with the run's ``run_index``
change: a terminal event deletes the row, a wait sets ``wake_at``. A command that arrives while the
run decides to wait makes it due again (see ``run_index``), and this advance goes round once more.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from opentelemetry.trace import SpanKind
from prometheus_client import CollectorRegistry

from agentlane import telemetry
from agentlane.errors import StoreError
from agentlane.events import TERMINAL_STATUS
from agentlane.leases import Fence
from agentlane.logs import log_context
from agentlane.run_index import DueRun, IndexChange, RunIndex
from agentlane.store import EventStore
from runners.api import Outcome, WorkflowUnavailable
from runners.engine._journal import Journal
from runners.engine._metrics import EngineMetrics
from runners.engine._registry import WorkflowFn, WorkflowRegistry
from runners.engine._runtime import ActiveRun, Fenced, settle
from runners.engine.context import RunInfo, WorkflowContext, _Unload
from runners.engine.errors import (
    EngineError,
    NonDeterminismError,
    UnknownWorkflow,
    WorkflowCancelled,
)

logger = logging.getLogger(__name__)


_ENDS = frozenset(Outcome(status) for status in TERMINAL_STATUS.values())


class _Again(Exception):
    """A command arrived while the run decided to wait: advance it once more."""


class Executor:
    """The :class:`runners.api.RunExecutor` of the engine. Holds no per-run state between calls,
    so any instance on any runner can advance any run it holds the lease for."""

    def __init__(
        self,
        store: EventStore,
        run_index: RunIndex,
        registry: WorkflowRegistry,
        *,
        metrics_registry: CollectorRegistry | None = None,
        code_version: str | None = None,
    ) -> None:
        self.store = store
        self.run_index = run_index
        self.registry = registry
        #: Recorded in each RunStarted this executor writes (the deployed image, say).
        self.code_version = code_version
        self.metrics = EngineMetrics(metrics_registry or CollectorRegistry())

    async def advance(
        self, run: DueRun, fence: Fence, *, wake: asyncio.Event, stop: asyncio.Event
    ) -> Outcome:
        with log_context(tenant=run.tenant_id, session=run.session_id, execution=run.execution_id):
            while True:
                try:
                    return await self._advance_once(run, fence, wake, stop)
                except _Again:
                    continue

    async def _advance_once(
        self, run: DueRun, fence: Fence, wake: asyncio.Event, stop: asyncio.Event
    ) -> Outcome:
        events = await self.store.resolve(
            await self.store.read_execution(run.tenant_id, run.execution_id)
        )
        if not events:
            raise EngineError(f"run {run.execution_id} has no events")
        journal = Journal.from_events(events, self.registry.completions)
        active = ActiveRun(
            self.store, self.run_index, run, fence, journal, wake=wake, stop=stop,
            metrics=self.metrics,
        )
        if journal.terminal is not None:
            # The index outlived the run (e.g. rebuilt): drop it, fenced like any write.
            outcome = Outcome(TERMINAL_STATUS[journal.terminal.type])
            return await _finish(active, outcome, None)
        # A child of the span that accepted the run: the run's work joins the request's trace. The
        # tasks the advance starts (flusher, activities) inherit it, so the events they append
        # carry it on to the projector and the gateway.
        with telemetry.span(
            "agentlane.runner", "advance run", parent=journal.accepted.trace,
            kind=SpanKind.CONSUMER,
            attributes={
                "agentlane.tenant": run.tenant_id,
                "agentlane.session": run.session_id,
                "agentlane.execution": run.execution_id,
            },
        ):
            outcome = await self._advance_journal(run, fence, journal, active)
            if outcome in _ENDS:
                # One line per run that ends, under the run's trace (the access log of runs).
                logger.info("run %s", outcome.value, extra={"outcome": outcome.value})
            return outcome

    async def _advance_journal(
        self, run: DueRun, fence: Fence, journal: Journal, active: ActiveRun
    ) -> Outcome:
        accepted = journal.accepted.data
        name, version = journal.workflow_version or (str(accepted.get("workflow", "agent")), None)
        try:
            # A new run starts on the newest version here; a started one keeps its version.
            version = version or self.registry.latest(name)
            fn = self.registry.get(name, version)
        except UnknownWorkflow:
            if journal.cancel_requested:
                # Ending a run asked to stop needs none of its code.
                return await _finish(active, Outcome.CANCELLED, ("Cancelled", _cancel_data(active)))
            # Version pinning: never run a journal with code it was not written by. The run
            # stays due for a runner that has that version; nothing is written.
            raise WorkflowUnavailable(name, version) from None
        if journal.started is None:
            started = {"workflow": name, "version": version, "runnerId": fence.holder}
            if self.code_version:
                started["codeVersion"] = self.code_version
            active.add("RunStarted", started)
        ctx = WorkflowContext(active, run_info(run, journal, name, version))
        if journal.cancel_requested:
            active.request_cancel()
        return await _drive(active, ctx, fn, dict(accepted))


def run_info(run: DueRun, journal: Journal, workflow: str, version: str) -> RunInfo:
    return RunInfo(
        tenant_id=run.tenant_id,
        session_id=run.session_id,
        execution_id=run.execution_id,
        run_id=str(journal.accepted.data.get("runId", "")),
        accepted_seq=journal.accepted.seq,
        workflow=workflow,
        version=version,
    )


async def _drive(
    active: ActiveRun, ctx: WorkflowContext, fn: WorkflowFn, payload: dict[str, Any]
) -> Outcome:
    workflow = asyncio.ensure_future(run_checked(ctx, fn, payload))
    flusher = asyncio.create_task(active.flusher(workflow))
    watcher = asyncio.create_task(active.watcher())
    try:
        try:
            result = await workflow
        except _Unload as unload:
            await _stop(active, flusher, watcher)
            flushed = await active.flush(change=unload.change, seen_seq=unload.seen_seq)
            if flushed.commands_waiting and unload.outcome in (
                Outcome.SUSPENDED,
                Outcome.SLEEPING,
            ):
                raise _Again() from None
            return unload.outcome
        except WorkflowCancelled as cancelled:
            await _stop(active, flusher, watcher)
            data = {"reason": cancelled.reason} if cancelled.reason else {}
            return await _finish(active, Outcome.CANCELLED, ("Cancelled", data))
        except NonDeterminismError as exc:
            await _stop(active, flusher, watcher)
            # Nothing the diverged code produced is trustworthy: none of it is written. The run is
            # not failed either (a deploy changed the code under its version: rolling back, or
            # moving it to a version that replays it, resumes it), unless it was asked to stop.
            active.discard_pending()
            if active.journal.cancel_requested:
                return await _finish(active, Outcome.CANCELLED, ("Cancelled", _cancel_data(active)))
            raise WorkflowUnavailable(
                ctx.run.workflow, ctx.run.version, reason="diverged", detail=str(exc)
            ) from None
        except asyncio.CancelledError:
            if _cancelling():
                raise
            if active.failure is not None:
                raise active.failure from None
            if active.fenced:
                return Outcome.FENCED
            raise
        except Fenced:
            return Outcome.FENCED
        except StoreError:
            # The database failed a read of the workflow's own (its history, the clock), not the
            # workflow: nothing is decided, the advance fails and the run is advanced again later.
            await _stop(active, flusher, watcher)
            raise
        except Exception as exc:
            await _stop(active, flusher, watcher)
            logger.warning("workflow failed: %s: %s", type(exc).__name__, exc)
            return await _finish(active, Outcome.FAILED, ("Failed", {"reason": failure(exc)}))
        await _stop(active, flusher, watcher)
        return await _finish(active, Outcome.COMPLETED, ("Completed", completed_data(result)))
    except Fenced:
        return Outcome.FENCED
    finally:
        for task in (workflow, flusher, watcher):
            task.cancel()
        await settle(workflow, flusher, watcher)


async def run_checked(ctx: WorkflowContext, fn: WorkflowFn, payload: dict[str, Any]) -> Any:
    """Run the workflow; returning while the journal still holds steps is a divergence."""
    result = await fn(ctx, payload)
    if ctx.is_replaying:
        raise NonDeterminismError(
            ctx.run.execution_id, ctx._step, "more steps", "the workflow returned"
        )
    return result


async def _stop(active: ActiveRun, flusher: asyncio.Task[Any], watcher: asyncio.Task[Any]) -> None:
    await active.stop_flusher(flusher)
    watcher.cancel()
    await settle(watcher)
    if active.failure is not None:
        raise active.failure


async def _finish(
    active: ActiveRun, outcome: Outcome, terminal: tuple[str, dict[str, Any]] | None
) -> Outcome:
    extra = [active.event(*terminal)] if terminal is not None else []
    await active.flush(extra=extra, change=IndexChange(delete=True))
    return outcome


def _cancel_data(active: ActiveRun) -> dict[str, Any]:
    reason = active.journal.cancel_reason
    return {"reason": reason} if reason else {}


def completed_data(result: Any) -> dict[str, Any]:
    """The data of the ``Completed`` event a workflow's return value makes."""
    if isinstance(result, dict) and "answer" in result:
        return {"answer": str(result["answer"]), "offline": bool(result.get("offline", False))}
    return {"answer": result if isinstance(result, str) else "" if result is None else str(result)}


def failure(exc: BaseException) -> str:
    """The ``reason`` of the ``Failed`` event a workflow's exception makes."""
    return f"{type(exc).__name__}: {exc}"[:4000]


def _cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0

