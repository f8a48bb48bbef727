"""What a workflow may touch: ``ctx.activity``, ``ctx.sleep``, ``ctx.wait_signal``, ``ctx.emit``.

Every call takes the next step number. While the journal has a record for that step the call is a
replay: its recorded result comes back at once and nothing runs or is written (a record of another
kind or name is a NonDeterminismError). Past the journal's end the call runs live and its outcome
is journaled. Waiting (a timer not yet due, a signal not yet delivered, a retry far away, a drain)
unloads the run by raising ``_Unload`` out of the workflow; the next advance replays up to here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, overload

from agentlane import telemetry
from agentlane.events import format_timestamp
from agentlane.logs import log_context
from agentlane.run_index import IndexChange
from runners.api import Outcome
from runners.engine._journal import (
    ACTIVITY_TYPES,
    ENGINE_TYPES,
    SIGNAL_PREFIX,
    SLEEP,
    Completion,
    Signal,
    StepRecord,
)
from runners.engine._runtime import ActiveRun
from runners.engine.errors import (
    ActivityError,
    EngineError,
    NonDeterminismError,
    WorkflowCancelled,
)
from runners.engine.retry import RetryPolicy

#: Retry waits up to this long happen in the process; longer ones unload the run (durably).
IN_PROCESS_RETRY_MAX = timedelta(seconds=2)

ActivityFn = Callable[..., Awaitable[Any]]
#: The error of an attempt whose runner was lost while it streamed.
ABANDONED = "abandoned: the runner running this attempt was lost"


class _Unload(BaseException):
    """Leave the workflow here: write what is pending plus ``change`` and return ``outcome``.

    ``seen_seq`` is the journal position the decision was made on: a command the watcher reads
    after it (while the unload is being written) still counts as new, so it wakes the run again
    instead of being lost behind a suspension.
    """

    def __init__(self, outcome: Outcome, change: IndexChange, seen_seq: int) -> None:
        super().__init__(outcome.value)
        self.outcome = outcome
        self.change = change
        self.seen_seq = seen_seq


@dataclass(frozen=True, slots=True)
class RunInfo:
    tenant_id: str
    session_id: str
    execution_id: str
    run_id: str
    accepted_seq: int
    workflow: str
    version: str


class StepInfo:
    """Handed to an activity as its first argument: who it runs for, and its stable step key."""

    __slots__ = ("_active", "_attached", "attempt", "execution_id", "failures", "key", "step")

    def __init__(self, active: ActiveRun, step: int, attempt: int, failures: int) -> None:
        self._active = active
        self._attached: list[tuple[str, dict[str, Any]]] = []
        self.execution_id = active.run.execution_id
        self.step = step
        #: Tags what this attempt streams: it grows with every try, a crashed one included, so
        #: the tokens of two tries never mix.
        self.attempt = attempt
        #: Tries of this step the engine recorded as failed (``StepFailed``); the retry budget
        #: counts these, never crashes of the process running it.
        self.failures = failures
        self.key = f"{self.execution_id}:{step}"

    def stream(
        self, event_type: Literal["Token"], data: dict[str, Any], *, urgent: bool = True
    ) -> None:
        """Write a live event while the activity still runs (at once when ``urgent``, else with
        the next batch); it stays in the journal even if this attempt fails."""
        self._active.add(event_type, data, urgent=urgent)

    def after_stream_written(self, callback: Callable[[], None]) -> bool:
        """When events this run streamed are not committed yet: arrange for ``callback`` once
        they are (or are lost with their transaction) and return True; else return False. A
        streamer that gets True may hold its next event and send more text in it then (fewer,
        larger events when the runner is busy, instead of a queue that grows)."""
        return self._active.after_tokens_written(callback)

    def attach(self, event_type: str, data: dict[str, Any]) -> None:
        """Write an event together with this step's completion (dropped if the attempt fails)."""
        if event_type in ENGINE_TYPES or event_type in self._active.journal.completions:
            raise EngineError(f"{event_type} is written by the engine only")
        self._attached.append((event_type, data))


class WorkflowContext:
    """The only door from workflow code to the world (see the module docstring)."""

    def __init__(self, active: ActiveRun, info: RunInfo) -> None:
        self._active = active
        self._journal = active.journal
        self.run = info
        self._step = 0
        self._emits = 0

    @property
    def next_step(self) -> int:
        """The step number the next ``ctx`` call will take."""
        return self._step

    @property
    def is_replaying(self) -> bool:
        """True while the journal holds records beyond the current step."""
        return self._step <= self._journal.last_step

    # --- activities ---------------------------------------------------------------------------

    async def activity(
        self,
        name: str,
        fn: ActivityFn,
        *args: Any,
        retry: RetryPolicy | None = None,
        completion: Completion | None = None,
    ) -> Any:
        """Run ``fn(step_info, *args)`` once per step, journaling its JSON result.

        The step completes with ``StepCompleted`` (the result in its ``result``), or with
        ``completion``'s own event type: ``fn`` then returns that event's fields (a JSON object)
        and ``completion.activity_name`` of them must give back ``name``. The completion must be
        registered with the workflow registry.
        """
        if completion is not None and completion.event_type not in self._journal.completions:
            raise EngineError(f"completion {completion.event_type} is not registered")
        policy = retry or RetryPolicy()
        step = self._next()
        record_ = self._replayed(step, name)
        attempt = 1
        failures = 0
        if record_ is not None:
            if record_.completion is not None:
                recorded = record_.completion
                if recorded.type == "StepCompleted":
                    return recorded.data.get("result")
                return Completion.result(recorded.data)
            if record_.failures:
                failures = len(record_.failures)
                last = record_.failures[-1]
                if not last["retryable"]:
                    raise ActivityError(name, step, failures, last["error"])
                attempt = last["attempt"] + 1
                retry_at = last.get("retryAt")
                if retry_at is not None:
                    await self._wait_until(datetime.fromisoformat(retry_at))
        streamed = self._journal.streamed.get(step, 0)
        attempt = max(attempt, streamed + 1)
        self._check_live()
        if streamed and not self._journal.attempt_ended(step, streamed):
            # An attempt streamed and never ended: its runner was lost. Say so before the next
            # attempt streams, so a reader drops that text now (docs/contract.md, "Streams").
            self._active.add(
                "StepFailed",
                {
                    "step": step, "name": name, "attempt": streamed, "error": ABANDONED,
                    "retryable": True, "abandoned": True,
                },
                urgent=True,
            )
        with log_context(step=step):
            while True:
                info = StepInfo(self._active, step, attempt, failures)
                try:
                    result = await self._attempt(name, info, fn, args)
                except asyncio.CancelledError:
                    if self._active.cancelling and not _current_task_cancelling():
                        raise WorkflowCancelled(self._journal.cancel_reason) from None
                    raise
                except Exception as exc:
                    self._active.metrics.step_attempts.labels("failed").inc()
                    failures += 1
                    retryable = policy.is_retryable(exc) and failures < policy.max_attempts
                    error = f"{type(exc).__name__}: {exc}"[:2000]
                    failure: dict[str, Any] = {
                        "step": step,
                        "name": name,
                        "attempt": attempt,
                        "error": error,
                        "retryable": retryable,
                    }
                    if not retryable:
                        self._active.add("StepFailed", failure)
                        raise ActivityError(name, step, failures, error) from exc
                    delay = policy.delay(failures, exc)
                    retry_at = await self._active.store.now() + delay
                    failure["retryAt"] = retry_at.isoformat()
                    self._active.add("StepFailed", failure)
                    if delay > IN_PROCESS_RETRY_MAX:
                        raise _Unload(
                            Outcome.SLEEPING, IndexChange(wake=retry_at), self._journal.last_seq
                        ) from None
                    await self._pause(delay)
                    attempt += 1
                    self._check_live()
                    continue
                self._active.metrics.step_attempts.labels("completed").inc()
                result = json.loads(json.dumps(result))
                for event_type, data in info._attached:
                    self._active.add(event_type, data)
                if completion is not None:
                    self._active.add(completion.event_type, completion.data(step, result))
                else:
                    self._active.add(
                        "StepCompleted",
                        {"step": step, "name": name, "result": result, "attempts": attempt},
                    )
                return result

    async def _attempt(
        self, name: str, info: StepInfo, fn: ActivityFn, args: tuple[Any, ...]
    ) -> Any:
        """One attempt of a step, in a span of its own (the activity's task inherits it: a model
        call's span is its child)."""
        with telemetry.span(
            "agentlane.runner", f"step {name}",
            attributes={"agentlane.step": info.step, "agentlane.attempt": info.attempt},
        ):
            task = asyncio.ensure_future(fn(info, *args))
            with self._active.running(task):
                return await task

    # --- timers -------------------------------------------------------------------------------

    async def sleep(self, duration: timedelta) -> None:
        """A durable timer on database time: the run unloads and a later advance resumes it."""
        step = self._next()
        record = self._replayed(step, SLEEP)
        if record is not None and record.completion is not None:
            return
        if record is None or record.fire_at is None:
            self._check_live()
            fire_at = await self._active.store.now() + duration
            self._active.add("TimerScheduled", {"step": step, "fireAt": fire_at.isoformat()})
        else:
            fire_at = record.fire_at
        self._check_cancel()
        await self._wait_until(fire_at)
        self._active.add("TimerFired", {"step": step})

    async def _wait_until(self, moment: datetime) -> None:
        if await self._active.store.now() < moment:
            raise _Unload(
                Outcome.SLEEPING, IndexChange(status="running", wake=moment), self._journal.last_seq
            )

    # --- signals ------------------------------------------------------------------------------

    @overload
    async def wait_signal(
        self,
        *names: str,
        reason: Literal["approval", "budget", "signal"] = ...,
        detail: str | None = ...,
        fresh: bool = ...,
        timeout: None = None,  # noqa: ASYNC109 - a durable deadline, not an in-process wait
    ) -> Signal: ...

    @overload
    async def wait_signal(
        self,
        *names: str,
        reason: Literal["approval", "budget", "signal"] = ...,
        detail: str | None = ...,
        fresh: bool = ...,
        timeout: timedelta,  # noqa: ASYNC109
    ) -> Signal | None: ...

    async def wait_signal(
        self,
        *names: str,
        reason: Literal["approval", "budget", "signal"] = "signal",
        detail: str | None = None,
        fresh: bool = False,
        timeout: timedelta | None = None,  # noqa: ASYNC109
    ) -> Signal | None:
        """Wait for a signal with one of ``names`` (the oldest unconsumed one wins). With
        ``fresh``, only a signal delivered after this wait suspended the run counts, so nobody can
        answer a question before it was asked (an approval sent ahead of its tool call).

        With ``timeout``, the wait has a deadline on database time, set when it first suspends
        and recorded in its ``Suspended`` (a durable timer: the run is due again then, on any
        runner). A signal delivered before the deadline wins; once the deadline has passed with
        none, the step completes as timed out (``Resumed`` with reason ``deadline``) and this
        returns None, in every replay alike."""
        if not names:
            raise ValueError("wait_signal needs at least one name")
        if timeout is not None and timeout <= timedelta(0):
            raise ValueError("wait_signal's timeout must be positive")
        step = self._next()
        label = SIGNAL_PREFIX + "|".join(names)
        record = self._replayed(step, label)
        if record is not None and record.completion is not None:
            result = record.completion.data["result"]
            if result.get("timedOut"):
                return None
            return Signal(result["eventId"], result["name"], result.get("payload"))
        self._check_cancel()
        if fresh and (record is None or record.suspended_at is None):
            signal = None  # not asked yet: suspend first, whatever was sent before
        else:
            after = record.suspended_at if fresh and record is not None else None
            signal = self._journal.next_signal(names, after=after or 0)
        if signal is None:
            deadline = record.deadline if record is not None else None
            if record is None or not record.suspended:
                data: dict[str, Any] = {"reason": reason, "name": names[0], "step": step}
                if detail:
                    data["detail"] = detail
                if timeout is not None:
                    deadline = await self._active.store.now() + timeout
                    data["deadline"] = format_timestamp(deadline)
                self._active.add("Suspended", data)
            elif deadline is not None and await self._active.store.now() >= deadline:
                self._active.add(
                    "StepCompleted",
                    {"step": step, "name": label,
                     "result": {"timedOut": True, "deadline": format_timestamp(deadline)}},
                )
                self._active.add("Resumed", {"reason": "deadline", "step": step})
                return None
            raise _Unload(
                Outcome.SUSPENDED,
                IndexChange(status="suspended", wake=deadline or "never"),
                self._journal.last_seq,
            )
        self._journal.consumed.add(signal.event_id)
        payload = {"eventId": signal.event_id, "name": signal.name, "payload": signal.payload}
        self._active.add("StepCompleted", {"step": step, "name": label, "result": payload})
        if record is not None and record.suspended:
            self._active.add("Resumed", {"reason": f"signal {signal.name}", "step": step})
        return signal

    # --- events -------------------------------------------------------------------------------

    def emit(self, event_type: str, data: dict[str, Any]) -> None:
        """Append an event of the workflow's own (e.g. ToolCall), exactly once across replays."""
        if (
            event_type in ENGINE_TYPES
            or event_type in ACTIVITY_TYPES
            or event_type in self._journal.completions
        ):
            raise EngineError(f"ctx.emit cannot write {event_type}: the engine or an activity does")
        self._emits += 1
        if self._emits <= self._journal.emitted:
            return
        self._active.add(event_type, data)

    # --- internals ----------------------------------------------------------------------------

    def _next(self) -> int:
        step = self._step
        self._step += 1
        return step

    def _replayed(self, step: int, name: str) -> StepRecord | None:
        record = self._journal.steps.get(step)
        if record is None:
            if step < self._journal.last_step:
                raise NonDeterminismError(self.run.execution_id, step, "<no step>", name)
            return None
        same = (
            record.kind == SIGNAL_PREFIX and name.startswith(SIGNAL_PREFIX)
            if record.kind == SIGNAL_PREFIX
            else record.name == name
        )
        if not same:
            raise NonDeterminismError(self.run.execution_id, step, record.name, name)
        return record

    def _check_cancel(self) -> None:
        if self._journal.cancel_requested:
            raise WorkflowCancelled(self._journal.cancel_reason)

    def _check_live(self) -> None:
        """Before starting new work: a cancel raises here; a drain unloads the run."""
        self._check_cancel()
        if self._active.stop.is_set():
            raise _Unload(
                Outcome.YIELDED, IndexChange(status="running", wake="now"), self._journal.last_seq
            )

    async def _pause(self, delay: timedelta) -> None:
        await self._active.flush()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay.total_seconds()):
                await self._active.cancelled.wait()
        self._check_cancel()


def _current_task_cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


__all__ = ["RunInfo", "StepInfo", "WorkflowContext"]
