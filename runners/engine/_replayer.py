"""Replay a recorded run against the workflow code, with no database: does the code still agree?

Model: temporalio's ``worker/_replayer.py``. A run's history (its events in ``seq`` order, from
``agentlane replay run --json`` or a golden file) is folded into a journal and the registered
workflow runs against it exactly as an advance would, except that nothing runs live and nothing is
written: the replay stops at the first point where the recorded history ends (the run's frontier).

The code agrees with the history when every step it asks for is the step the journal recorded
(else :class:`NonDeterminismError`, as a live advance would raise) and, for a history that ended,
when the code ends the same way: the same answer for ``Completed``, the same reason for ``Failed``,
a cancellation for ``Cancelled``. A change to a workflow that would break runs in flight fails
here first (``tests/engine/test_golden_replays.py`` replays the recorded agent histories in CI).
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry

from agentlane.events import TERMINAL_STATUS, validate_data
from agentlane.leases import Fence
from agentlane.records import NewEvent, StoredEvent
from agentlane.run_index import DueRun
from agentlane.store import Collective, TransactionHook
from runners.engine._executor import completed_data, failure, run_checked, run_info
from runners.engine._journal import Journal
from runners.engine._metrics import EngineMetrics
from runners.engine._registry import WorkflowRegistry
from runners.engine._runtime import ActiveRun
from runners.engine.context import WorkflowContext, _Unload
from runners.engine.errors import EngineError, NonDeterminismError, WorkflowCancelled


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """How the code's replay of a history ended.

    ``outcome`` is ``completed``, ``failed`` or ``cancelled`` when the code ended the run, and
    otherwise where it stopped at the history's frontier: ``suspended`` (waiting for a signal),
    ``sleeping`` (a timer or a retry not yet due at the history's last event) or ``yielded`` (it
    would run its next step now). ``data`` is what its ``Completed``/``Failed``/``Cancelled`` event
    would carry.
    """

    execution_id: str
    outcome: str
    data: dict[str, Any]
    #: Steps the code took (the journal's steps it replayed, plus the one it stopped at).
    steps: int


class _RecordedLog:
    """The log as a replay sees it: the history's own clock, and no writes."""

    def __init__(self, events: Sequence[StoredEvent]) -> None:
        self._now = events[-1].created_at

    async def append_batch(
        self,
        events: Sequence[NewEvent],
        *,
        fence: Fence | None = None,
        in_transaction: TransactionHook | None = None,
        deferrable: bool = False,
        collective: Collective | None = None,
    ) -> list[StoredEvent]:
        raise EngineError("a replay writes nothing")

    async def read_execution(
        self,
        tenant_id: str,
        execution_id: str,
        *,
        gt_seq: int = 0,
        types: Collection[str] | None = None,
    ) -> list[StoredEvent]:
        return []  # commands are in the history already

    async def resolve(self, events: Sequence[StoredEvent]) -> list[StoredEvent]:
        return list(events)  # the history given is resolved already

    async def now(self) -> datetime:
        return self._now


class Replayer:
    """Replays histories of the workflows in ``registry`` (the same registry a runner uses)."""

    def __init__(self, registry: WorkflowRegistry) -> None:
        self.registry = registry
        self._metrics = EngineMetrics(CollectorRegistry())

    async def replay(self, events: Sequence[StoredEvent]) -> ReplayResult:
        """Replay one run's events (``seq`` order, starting with ``RunAccepted``). Raises
        NonDeterminismError where the code and the history disagree."""
        history = list(events)
        journal = Journal.from_events(history, self.registry.completions)
        accepted = journal.accepted
        execution_id = accepted.execution_id or ""
        if journal.started is None:
            raise EngineError(f"run {execution_id} never started: nothing to replay")
        name, version = journal.started["workflow"], journal.started["version"]
        fn = self.registry.get(name, version)
        run = DueRun(accepted.tenant_id, accepted.session_id, execution_id, 0)
        stop = asyncio.Event()
        stop.set()  # nothing runs live: the first live step unloads as a drain would
        active = ActiveRun(
            _RecordedLog(history),
            None,
            run,
            Fence(0, "replay", 0),
            journal,
            wake=asyncio.Event(),
            stop=stop,
            metrics=self._metrics,
        )
        ctx = WorkflowContext(active, run_info(run, journal, name, version))
        if journal.cancel_requested:
            active.request_cancel()
        try:
            answer = await run_checked(ctx, fn, dict(accepted.data))
        except _Unload as unload:
            result = ReplayResult(execution_id, unload.outcome.value, {}, ctx.next_step)
        except WorkflowCancelled as cancelled:
            data = {"reason": cancelled.reason} if cancelled.reason else {}
            result = ReplayResult(execution_id, "cancelled", data, ctx.next_step)
        except NonDeterminismError:
            raise
        except Exception as exc:
            result = ReplayResult(execution_id, "failed", {"reason": failure(exc)}, ctx.next_step)
        else:
            result = ReplayResult(execution_id, "completed", completed_data(answer), ctx.next_step)
        _check_ending(journal, result)
        return result


def _check_ending(journal: Journal, result: ReplayResult) -> None:
    """A history that ended must end the same way in the code."""
    terminal = journal.terminal
    if terminal is None:
        if result.outcome in TERMINAL_STATUS.values():
            raise NonDeterminismError(
                result.execution_id, result.steps, "a run still in progress",
                f"the run {result.outcome} ({result.data})",
            )
        return
    status = TERMINAL_STATUS[terminal.type]
    ending = _TERMINAL_TYPE.get(result.outcome)
    replayed = validate_data(ending, result.data) if ending is not None else result.data
    if (result.outcome, replayed) != (status, terminal.data):
        raise NonDeterminismError(
            result.execution_id, result.steps, f"{status} {terminal.data}",
            f"{result.outcome} {replayed}",
        )


_TERMINAL_TYPE: dict[str, str] = {status: kind for kind, status in TERMINAL_STATUS.items()}


