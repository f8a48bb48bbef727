"""The workflow engine with small workflows of the tests' own: journal, replay, timers, signals,
retries, versions, fences and crashes, all through ``advance`` against the real database."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import pytest

from agentlane.errors import CommandError, RunFinished, StoreConflict, StoreUnavailable
from agentlane.records import NewEvent
from runners.api import Outcome, WorkflowUnavailable
from runners.engine import (
    ActivityError,
    Completion,
    EngineError,
    Executor,
    NonRetryable,
    RetryPolicy,
    StepInfo,
    WorkflowContext,
    WorkflowRegistry,
)
from tests.engine.conftest import Harness, claim_shard

FAST = RetryPolicy(max_attempts=3, initial_interval=timedelta(milliseconds=10))


def executor_with(harness: Harness, *workflows: tuple[str, str, Any]) -> Executor:
    """An executor whose registry holds the given code; runs started by ``start_run`` name the
    workflow ``agent``, so the tests register their workflows under that name."""
    registry = WorkflowRegistry()
    for name, version, fn in workflows:
        registry.register(name, version, fn)
    return harness.executor(registry)


async def echo(step: StepInfo, value: Any) -> Any:
    return {"value": value, "key": step.key}


async def test_durable_timer_unloads_and_fires_on_database_time(harness: Harness) -> None:
    calls: list[str] = []

    async def before(step: StepInfo) -> str:
        calls.append(step.key)
        return "before"

    async def wf(ctx: WorkflowContext, payload: dict[str, Any]) -> str:
        first = await ctx.activity("before", before)
        await ctx.sleep(timedelta(seconds=1.5))
        second = await ctx.activity("after", echo, "x")
        return f"{first}/{second['value']}"

    run = await harness.start("r1", "sleepy")
    assert await harness.advance(executor_with(harness, ("agent", "1", wf)), run) is (
        Outcome.SLEEPING
    )
    events = await harness.events(run)
    scheduled = next(e for e in events if e.type == "TimerScheduled")
    status, wake_at = await harness.index_row(run)
    assert status == "running"
    assert wake_at.isoformat() == scheduled.data["fireAt"].replace("Z", "+00:00")
    # fire_at is database time: 1.5 s after the write's own now().
    assert timedelta(seconds=1.4) <= wake_at - scheduled.created_at <= timedelta(seconds=1.6)
    # Another runner (a new executor, nothing in memory) before the timer is due: still sleeping,
    # nothing re-run, nothing written.
    count = len(events)
    other = executor_with(harness, ("agent", "1", wf))
    assert await harness.advance(other, run, await harness.fence("runner-b")) is Outcome.SLEEPING
    assert len(await harness.events(run)) == count
    await harness.sleep_until(wake_at)
    third = executor_with(harness, ("agent", "1", wf))
    assert await harness.advance(third, run, await harness.fence("runner-c")) is Outcome.COMPLETED
    events = await harness.events(run)
    fired = next(e for e in events if e.type == "TimerFired")
    assert fired.created_at >= wake_at
    assert events[-1].data["answer"] == "before/x"
    assert calls == [f"{run.execution_id}:0"]  # replayed, not re-run
    assert await harness.index_row(run) is None


async def test_changed_code_under_the_same_version_leaves_the_run_untouched_until_rolled_back(
    harness: Harness,
) -> None:
    async def v1(ctx: WorkflowContext, payload: dict[str, Any]) -> str:
        await ctx.activity("fetch", echo, 1)
        signal = await ctx.wait_signal("go")
        await ctx.activity("store", echo, signal.payload)
        return "done"

    async def v1_edited(ctx: WorkflowContext, payload: dict[str, Any]) -> str:
        await ctx.activity("fetch-renamed", echo, 1)
        return "done"

    run = await harness.start("r1", "go")
    assert await harness.advance(executor_with(harness, ("agent", "1", v1)), run) is (
        Outcome.SUSPENDED
    )
    await harness.signal(run, "go", 2)
    before = await harness.events(run)
    edited = executor_with(harness, ("agent", "1", v1_edited))
    with pytest.raises(WorkflowUnavailable) as diverged:
        await harness.advance(edited, run)
    assert diverged.value.reason == "diverged"
    message = str(diverged.value)
    assert "non-determinism" in message and "'fetch'" in message and "'fetch-renamed'" in message
    # Nothing written, not failed: the run still waits, due, for code that replays it.
    assert await harness.events(run) == before
    assert (await harness.index_row(run))[0] == "suspended"
    # The rollback: the code the journal was written by resumes it where it was.
    assert await harness.advance(executor_with(harness, ("agent", "1", v1)), run) is (
        Outcome.COMPLETED
    )
    assert [e.type for e in (await harness.events(run))[len(before):]].count("Failed") == 0


async def test_code_that_stops_early_is_non_deterministic_too(harness: Harness) -> None:
    async def v1(ctx: WorkflowContext, payload: dict[str, Any]) -> str:
        await ctx.activity("a", echo, 1)
        await ctx.wait_signal("go")
        return "done"

    async def shorter(ctx: WorkflowContext, payload: dict[str, Any]) -> str:
        return "done"

    run = await harness.start("r1", "go")
    assert await harness.advance(executor_with(harness, ("agent", "1", v1)), run) is (
        Outcome.SUSPENDED
    )
    before = await harness.events(run)
    with pytest.raises(WorkflowUnavailable, match="non-determinism"):
        await harness.advance(executor_with(harness, ("agent", "1", shorter)), run)
    assert await harness.events(run) == before
    # Asked to stop, a diverged run ends as cancelled: that needs none of its code.
    await harness.cancel(run, "giving up on it")
    assert await harness.advance(executor_with(harness, ("agent", "1", shorter)), run) is (
        Outcome.CANCELLED
    )


async def test_a_run_keeps_the_version_it_started_with(harness: Harness) -> None:
    async def v1(ctx: WorkflowContext, payload: dict[str, Any]) -> str:
        await ctx.wait_signal("go")
        return "v1"

    async def v2(ctx: WorkflowContext, payload: dict[str, Any]) -> str:
        await ctx.activity("new-step", echo, 0)
        return "v2"

    old = await harness.start("old", "go")
    assert await harness.advance(executor_with(harness, ("agent", "1", v1)), old) is (
        Outcome.SUSPENDED
    )
    both = executor_with(harness, ("agent", "1", v1), ("agent", "2", v2))
    await harness.signal(old, "go")
    assert await harness.advance(both, old) is Outcome.COMPLETED
    harness.session = "s-2"
    new = await harness.start("new", "go")
    assert await harness.advance(both, new) is Outcome.COMPLETED
    started = {
        run.execution_id: next(e for e in await harness.events(run) if e.type == "RunStarted")
        for run in (old, new)
    }
    assert started[old.execution_id].data["version"] == "1"
    assert started[new.execution_id].data["version"] == "2"
    assert (await harness.events(old))[-1].data["answer"] == "v1"
    assert (await harness.events(new))[-1].data["answer"] == "v2"
    # A runner without the run's version leaves it alone (nothing written, still due) for a
    # runner that has it, instead of running other code on its journal.
    harness.session = "s-3"
    orphan = await harness.start("orphan", "go")
    assert await harness.advance(executor_with(harness, ("agent", "1", v1)), orphan) is (
        Outcome.SUSPENDED
    )
    await harness.signal(orphan, "go")
    before = await harness.events(orphan)
    only_v2 = executor_with(harness, ("agent", "2", v2))
    with pytest.raises(WorkflowUnavailable) as unavailable:
        await harness.advance(only_v2, orphan)
    assert (unavailable.value.workflow, unavailable.value.version) == ("agent", "1")
    assert await harness.events(orphan) == before
    status, wake_at = await harness.index_row(orphan)
    assert status == "suspended" and wake_at is not None  # due: the signal woke it
    assert await harness.advance(executor_with(harness, ("agent", "1", v1)), orphan) is (
        Outcome.COMPLETED
    )


async def test_an_operator_moves_a_run_to_another_version_explicitly(harness: Harness) -> None:
    async def v1(ctx: WorkflowContext, payload: dict[str, Any]) -> str:
        await ctx.wait_signal("go")
        return "v1"

    async def v2(ctx: WorkflowContext, payload: dict[str, Any]) -> str:
        # Replays v1's journal (the same first step), then goes on differently.
        await ctx.wait_signal("go")
        return str((await ctx.activity("new-step", echo, "x"))["value"])

    run = await harness.start("r1", "go")
    assert await harness.advance(executor_with(harness, ("agent", "1", v1)), run) is (
        Outcome.SUSPENDED
    )
    only_v2 = executor_with(harness, ("agent", "2", v2))
    await harness.signal(run, "go")
    with pytest.raises(WorkflowUnavailable):
        await harness.advance(only_v2, run)
    moved = await harness.commands.move_version(
        tenant_id=harness.tenant, execution_id=run.execution_id, to_version="2", reason="rollout"
    )
    assert moved is not None and moved.data == {
        "workflow": "agent", "fromVersion": "1", "toVersion": "2", "reason": "rollout"
    }
    # Moving again to the same version writes nothing.
    assert await harness.commands.move_version(
        tenant_id=harness.tenant, execution_id=run.execution_id, to_version="2"
    ) is None
    on_v2 = await harness.run_index.runs_on_version("agent", "2")
    assert [r.execution_id for r in on_v2] == [run.execution_id]
    assert await harness.run_index.runs_on_version("agent", "1") == []
    assert await harness.advance(only_v2, run) is Outcome.COMPLETED
    assert (await harness.events(run))[-1].data["answer"] == "x"
    # An ended run, or one that never started, cannot be moved.
    with pytest.raises(RunFinished):
        await harness.commands.move_version(
            tenant_id=harness.tenant, execution_id=run.execution_id, to_version="3"
        )
    queued = await harness.start("r2", "go")
    with pytest.raises(CommandError, match="has not started"):
        await harness.commands.move_version(
            tenant_id=harness.tenant, execution_id=queued.execution_id, to_version="2"
        )


async def test_a_cancelled_run_ends_even_where_its_version_is_missing(harness: Harness) -> None:
    async def v1(ctx: WorkflowContext, payload: dict[str, Any]) -> str:
        await ctx.wait_signal("go")
        return "v1"

    run = await harness.start("r1", "go")
    assert await harness.advance(executor_with(harness, ("agent", "1", v1)), run) is (
        Outcome.SUSPENDED
    )
    await harness.cancel(run, "not needed")
    other = executor_with(harness, ("agent", "2", v1))
    assert await harness.advance(other, run) is Outcome.CANCELLED
    assert (await harness.events(run))[-1].data == {"reason": "not needed"}


async def test_retries_journal_each_failed_attempt(harness: Harness) -> None:
    async def flaky(step: StepInfo) -> str:
        if step.attempt < 3:
            raise ConnectionError(f"attempt {step.attempt} failed")
        return "ok"

    async def broken(step: StepInfo) -> str:
        raise NonRetryable("bad input")

    async def wf(ctx: WorkflowContext, payload: dict[str, Any]) -> str:
        value = await ctx.activity("flaky", flaky, retry=FAST)
        try:
            await ctx.activity("broken", broken, retry=FAST)
        except ActivityError as exc:
            return f"{value}, then {exc.error}"
        return "unreachable"

    run = await harness.start("r1", "go")
    assert await harness.advance(executor_with(harness, ("agent", "1", wf)), run) is (
        Outcome.COMPLETED
    )
    events = await harness.events(run)
    failed = [(e.data["name"], e.data["attempt"], e.data["retryable"])
              for e in events if e.type == "StepFailed"]
    assert failed == [("flaky", 1, True), ("flaky", 2, True), ("broken", 1, False)]
    completed = next(e for e in events if e.type == "StepCompleted")
    assert completed.data == {"step": 0, "name": "flaky", "result": "ok", "attempts": 3}
    assert events[-1].data["answer"] == "ok, then NonRetryable: bad input"


async def test_signals_suspend_and_resume_exactly_once(harness: Harness) -> None:
    emitted: list[int] = []

    async def wf(ctx: WorkflowContext, payload: dict[str, Any]) -> str:
        ctx.emit(
            "ToolCall", {"step": 1, "callId": "c1", "name": "deploy", "requiresApproval": True}
        )
        emitted.append(ctx.next_step)
        signal = await ctx.wait_signal("approve:c1", "approve", reason="approval")
        return f"approved by {signal.payload['by']}"

    executor = executor_with(harness, ("agent", "1", wf))
    run = await harness.start("r1", "go")
    assert await harness.advance(executor, run) is Outcome.SUSPENDED
    assert await harness.index_row(run) == ("suspended", None)
    suspended = next(e for e in await harness.events(run) if e.type == "Suspended")
    assert suspended.data == {
        "reason": "approval", "name": "approve:c1", "step": 0, "detail": None, "deadline": None
    }
    # A signal of another name wakes the run but does not resume it, and writes no new Suspended.
    await harness.signal(run, "unrelated")
    assert (await harness.index_row(run))[1] is not None
    assert await harness.advance(executor, run) is Outcome.SUSPENDED
    assert await harness.index_row(run) == ("suspended", None)
    await harness.signal(run, "approve:c1", {"by": "ops"})
    assert await harness.advance(executor, run) is Outcome.COMPLETED
    types = await harness.types(run)
    assert types.count("ToolCall") == 1 and types.count("Suspended") == 1
    assert types[-3:] == ["StepCompleted", "Resumed", "Completed"]
    assert (await harness.events(run))[-1].data["answer"] == "approved by ops"


async def test_a_wait_with_a_deadline_times_out_on_database_time_on_any_runner(
    harness: Harness,
) -> None:
    async def wf(ctx: WorkflowContext, payload: dict[str, Any]) -> str:
        signal = await ctx.wait_signal(
            "approve:c1", reason="approval", fresh=True, timeout=timedelta(seconds=1)
        )
        after = await ctx.activity("after", echo, "x")  # the workflow goes on after it
        return f"{'timed out' if signal is None else signal.name}/{after['value']}"

    run = await harness.start("r1", "go")
    assert await harness.advance(executor_with(harness, ("agent", "1", wf)), run) is (
        Outcome.SUSPENDED
    )
    suspended = next(e for e in await harness.events(run) if e.type == "Suspended")
    deadline = datetime.fromisoformat(suspended.data["deadline"])
    # The deadline is database time, set when the wait first suspended, and the run is due then.
    assert timedelta(seconds=0.9) <= deadline - suspended.created_at <= timedelta(seconds=1.1)
    assert await harness.index_row(run) == ("suspended", deadline)
    # A wake before the deadline (another signal) leaves it waiting with the same deadline.
    await harness.signal(run, "unrelated")
    other = executor_with(harness, ("agent", "1", wf))
    assert await harness.advance(other, run, await harness.fence("runner-b")) is Outcome.SUSPENDED
    assert await harness.index_row(run) == ("suspended", deadline)
    await harness.sleep_until(deadline)
    third = executor_with(harness, ("agent", "1", wf))
    assert await harness.advance(third, run, await harness.fence("runner-c")) is (
        Outcome.COMPLETED
    )
    events = await harness.events(run)
    assert [e.type for e in events].count("Suspended") == 1
    completed = next(e for e in events if e.type == "StepCompleted" and e.data["step"] == 0)
    assert completed.data["result"] == {"timedOut": True, "deadline": suspended.data["deadline"]}
    resumed = next(e for e in events if e.type == "Resumed")
    assert resumed.data == {"reason": "deadline", "step": 0} and resumed.created_at >= deadline
    assert events[-1].data["answer"] == "timed out/x"
    # An approval sent after the deadline is too late: the step's outcome is in the journal.
    assert await harness.index_row(run) is None


async def test_a_signal_before_the_deadline_wins_and_replays_the_same(harness: Harness) -> None:
    async def wf(ctx: WorkflowContext, payload: dict[str, Any]) -> str:
        signal = await ctx.wait_signal("go", timeout=timedelta(seconds=30))
        assert signal is not None
        await ctx.wait_signal("second")
        return str(signal.payload)

    run = await harness.start("r1", "go")
    executor = executor_with(harness, ("agent", "1", wf))
    assert await harness.advance(executor, run) is Outcome.SUSPENDED
    await harness.signal(run, "go", "in time")
    assert await harness.advance(executor, run) is Outcome.SUSPENDED
    # Replayed by a fresh executor past the first wait: the signal, not a time-out.
    await harness.signal(run, "second")
    fresh = executor_with(harness, ("agent", "1", wf))
    assert await harness.advance(fresh, run) is Outcome.COMPLETED
    events = await harness.events(run)
    assert events[-1].data["answer"] == "in time"
    assert not any(e.type == "Resumed" and e.data.get("reason") == "deadline" for e in events)


async def test_a_wait_timeout_must_be_positive(harness: Harness) -> None:
    async def wf(ctx: WorkflowContext, payload: dict[str, Any]) -> str:
        await ctx.wait_signal("go", timeout=timedelta(0))
        return "never"

    run = await harness.start("r1", "go")
    assert await harness.advance(executor_with(harness, ("agent", "1", wf)), run) is (
        Outcome.FAILED
    )
    assert "timeout must be positive" in (await harness.events(run))[-1].data["reason"]


async def test_a_signal_sent_before_the_wait_is_taken_without_suspending(
    harness: Harness,
) -> None:
    gate = asyncio.Event()

    async def slow(step: StepInfo) -> str:
        await gate.wait()
        return "slow"

    async def wf(ctx: WorkflowContext, payload: dict[str, Any]) -> Any:
        await ctx.activity("slow", slow)
        return (await ctx.wait_signal("go")).payload

    executor = executor_with(harness, ("agent", "1", wf))
    run = await harness.start("r1", "go")
    wake = asyncio.Event()
    advancing = asyncio.create_task(harness.advance(executor, run, wake=wake))
    await asyncio.sleep(0.2)
    await harness.signal(run, "go", 7)
    wake.set()
    await asyncio.sleep(0.2)
    gate.set()
    assert await advancing is Outcome.COMPLETED
    assert "Suspended" not in await harness.types(run)
    assert (await harness.events(run))[-1].data["answer"] == "7"


async def test_cancel_while_sleeping_and_drain(harness: Harness) -> None:
    async def wf(ctx: WorkflowContext, payload: dict[str, Any]) -> str:
        await ctx.activity("a", echo, 1)
        await ctx.sleep(timedelta(hours=1))
        return "never"

    executor = executor_with(harness, ("agent", "1", wf))
    run = await harness.start("r1", "go")
    stop = asyncio.Event()
    stop.set()
    # Told to drain before the first step: nothing started, the run stays due for anyone.
    assert await harness.advance(executor, run, stop=stop) is Outcome.YIELDED
    status, wake_at = await harness.index_row(run)
    assert status == "running" and wake_at <= await harness.store.now()
    assert "StepCompleted" not in await harness.types(run)
    assert await harness.advance(executor, run) is Outcome.SLEEPING
    await harness.cancel(run, "no longer needed")
    assert await harness.advance(executor, run) is Outcome.CANCELLED
    events = await harness.events(run)
    assert events[-1].type == "Cancelled"
    assert events[-1].data["reason"] == "no longer needed"
    assert await harness.index_row(run) is None


async def test_crash_between_side_effect_and_completion_reruns_with_the_same_key(
    harness: Harness,
) -> None:
    side_effects: list[str] = []
    crashed = asyncio.Event()

    async def charge(step: StepInfo, amount: int) -> dict[str, Any]:
        side_effects.append(step.key)
        if len(side_effects) == 1:
            crashed.set()
            await asyncio.Event().wait()  # the process dies here, before the completion
        return {"charged": amount}

    async def wf(ctx: WorkflowContext, payload: dict[str, Any]) -> str:
        await ctx.activity("prepare", echo, 1)
        receipt = await ctx.activity("charge", charge, 5)
        return f"charged {receipt['charged']}"

    run = await harness.start("r1", "go")
    first = executor_with(harness, ("agent", "1", wf))
    advancing = asyncio.create_task(harness.advance(first, run))
    await asyncio.wait_for(crashed.wait(), 10)
    advancing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await advancing
    assert not any(
        e.type == "StepCompleted" and e.data["name"] == "charge" for e in await harness.events(run)
    )
    second = executor_with(harness, ("agent", "1", wf))
    assert await harness.advance(second, run, await harness.fence("runner-b")) is (
        Outcome.COMPLETED
    )
    key = f"{run.execution_id}:1"
    assert side_effects == [key, key]  # at-least-once side effect, same step key both times
    completions = [e.data["step"] for e in await harness.events(run) if e.type == "StepCompleted"]
    assert completions == [0, 1]  # exactly-once journal


async def test_a_stale_fence_writes_nothing(harness: Harness) -> None:
    async def wf(ctx: WorkflowContext, payload: dict[str, Any]) -> str:
        await ctx.activity("a", echo, 1)
        return "done"

    executor = executor_with(harness, ("agent", "1", wf))
    run = await harness.start("r1", "go")
    stale = await harness.fence("runner-a")
    await harness.fence("runner-b")  # took the shard over: a new token
    before = await harness.events(run)
    row = await harness.index_row(run)
    assert await harness.advance(executor, run, stale) is Outcome.FENCED
    assert len(await harness.events(run)) == len(before)
    assert await harness.index_row(run) == row


async def test_losing_the_lease_mid_run_stops_writing_at_once(harness: Harness) -> None:
    async def take_over(step: StepInfo) -> str:
        await claim_shard(harness.db, harness.shard, runner_id="runner-b")
        return "too late"

    async def wf(ctx: WorkflowContext, payload: dict[str, Any]) -> str:
        await ctx.activity("first", echo, 1)
        await ctx.activity("paused-here", take_over)
        await ctx.activity("never", echo, 3)
        return "done"

    executor = executor_with(harness, ("agent", "1", wf))
    run = await harness.start("r1", "go")
    assert await harness.advance(executor, run, await harness.fence("runner-a")) is Outcome.FENCED
    types = await harness.types(run)
    assert types == ["RunAccepted"]  # the batch carrying every step was refused whole
    assert (await harness.index_row(run))[0] == "queued"


async def test_the_database_refuses_a_second_completion_of_a_step(harness: Harness) -> None:
    async def wf(ctx: WorkflowContext, payload: dict[str, Any]) -> str:
        await ctx.activity("a", echo, 1)
        await ctx.sleep(timedelta(0))
        return "done"

    run = await harness.start("r1", "go")
    assert await harness.advance(executor_with(harness, ("agent", "1", wf)), run) is (
        Outcome.COMPLETED
    )

    def event(event_type: str, data: dict[str, Any]) -> NewEvent:
        return NewEvent(harness.tenant, harness.session, event_type, data,
                        execution_id=run.execution_id)

    for duplicate in (
        event("StepCompleted", {"step": 0, "name": "a", "result": 2}),
        event("ToolResult", {"step": 0, "callId": "c", "name": "a", "ok": True}),
        event("TimerFired", {"step": 1}),
        event("Completed", {"answer": "again"}),
        event("RunStarted", {"workflow": "agent", "version": "1"}),
    ):
        with pytest.raises(StoreConflict) as caught:
            await harness.store.append(duplicate)
        assert caught.value.sqlstate == "23505"
    # Another step of the same run, or the same step of another run, is fine.
    await harness.store.append(event("StepCompleted", {"step": 9, "name": "a", "result": 2}))


async def test_a_step_cannot_attach_what_only_the_engine_writes(harness: Harness) -> None:
    # A step's attached events ride with its completion; letting it attach a completion (the
    # engine's own or a registered one) would complete a step twice or one that never ran.
    refused: list[str] = []

    async def attaching(step: StepInfo) -> str:
        for kind in ("StepCompleted", "TimerFired", "Completed", "Reply"):
            try:
                step.attach(kind, {"step": step.step})
            except EngineError as exc:
                refused.append(str(exc))
        step.attach("Usage", {"model": "m", "step": step.step, "inputTokens": 1,
                              "outputTokens": 1})
        return "ok"

    async def wf(ctx: WorkflowContext, payload: dict[str, Any]) -> str:
        return str(await ctx.activity("a", attaching))

    registry = WorkflowRegistry()
    registry.register("agent", "1", wf)
    registry.register_completion(Completion("Reply", activity_name=lambda data: "a"))
    run = await harness.start("r1", "go")
    assert await harness.advance(harness.executor(registry), run) is Outcome.COMPLETED
    assert refused == [
        f"{kind} is written by the engine only"
        for kind in ("StepCompleted", "TimerFired", "Completed", "Reply")
    ]
    types = [e.type for e in await harness.events(run)]
    assert types.count("Usage") == 1
    assert not {"TimerFired", "Reply"} & set(types) and types.count("StepCompleted") == 1


async def test_a_signal_racing_the_suspension_is_not_lost(harness: Harness) -> None:
    async def signal_behind_our_back(step: StepInfo) -> str:
        # Delivered while the run is busy and never told (no wake): the write of Suspended sees
        # it under the session's head lock and the run goes on instead of sleeping forever.
        await harness.commands.signal_run(
            tenant_id=harness.tenant, execution_id=step.execution_id, name="go", payload="late"
        )
        return "sent"

    async def wf(ctx: WorkflowContext, payload: dict[str, Any]) -> Any:
        await ctx.activity("send", signal_behind_our_back)
        await ctx.wait_signal("never-sent")  # suspends first: the race window
        return "unreachable"

    async def wf_go(ctx: WorkflowContext, payload: dict[str, Any]) -> Any:
        await ctx.activity("send", signal_behind_our_back)
        return (await ctx.wait_signal("go")).payload

    run = await harness.start("r1", "go")
    assert await harness.advance(executor_with(harness, ("agent", "1", wf_go)), run) is (
        Outcome.COMPLETED
    )
    assert (await harness.events(run))[-1].data["answer"] == "late"
    # Waiting on another name: the signal makes the row due again rather than leaving NULL.
    harness.session = "s-2"
    other = await harness.start("r2", "go")
    assert await harness.advance(executor_with(harness, ("agent", "1", wf)), other) is (
        Outcome.SUSPENDED
    )
    assert await harness.index_row(other) == ("suspended", None)


async def test_interrupt_cancels_the_older_run_of_the_session(harness: Harness) -> None:
    async def wf(ctx: WorkflowContext, payload: dict[str, Any]) -> Any:
        await ctx.wait_signal("go")
        return "done"

    executor = executor_with(harness, ("agent", "1", wf))
    first = await harness.start("r1", "go")
    assert await harness.advance(executor, first) is Outcome.SUSPENDED
    second = await harness.start("r2", "go", on_conflict="interrupt")
    assert await harness.advance(executor, first) is Outcome.CANCELLED
    assert "interrupted by run r2" in (await harness.events(first))[-1].data["reason"]
    assert await harness.advance(executor, second) is Outcome.SUSPENDED


async def test_a_run_cancelled_before_it_started_never_runs_its_code(harness: Harness) -> None:
    ran: list[int] = []

    async def wf(ctx: WorkflowContext, payload: dict[str, Any]) -> Any:
        await ctx.activity("work", echo, 1)
        ran.append(1)
        return "done"

    run = await harness.start("r1", "go")
    await harness.cancel(run)
    assert await harness.advance(executor_with(harness, ("agent", "1", wf)), run) is (
        Outcome.CANCELLED
    )
    assert ran == []
    assert await harness.types(run) == ["RunAccepted", "CancelRequested", "RunStarted", "Cancelled"]


async def test_a_database_failure_in_the_workflow_body_fails_the_advance_not_the_run(
    harness: Harness,
) -> None:
    """Found by the chaos soak: a Postgres restart while the agent read its history (a read of
    the workflow body, not an activity) ended the run ``Failed: StoreUnavailable``. Database
    trouble decides nothing: the advance fails, the run stays due, and the next advance goes on."""
    reads = 0

    async def history() -> str:
        nonlocal reads
        reads += 1
        if reads == 1:
            raise StoreUnavailable("database unavailable: server closed the connection")
        return "earlier answers"

    async def workflow(ctx: WorkflowContext, payload: dict[str, Any]) -> str:
        first = await ctx.activity("fetch", echo, 1)
        context = await history()
        await ctx.activity("answer", echo, context)
        return str(first["value"])

    run = await harness.start("r1", "go")
    executor = executor_with(harness, ("agent", "1", workflow))
    with pytest.raises(StoreUnavailable):
        await harness.advance(executor, run)
    assert "Failed" not in await harness.types(run)
    assert await harness.index_row(run) is not None, "the run must stay in the work index"

    assert await harness.advance(executor, run) is Outcome.COMPLETED
    types = await harness.types(run)
    assert types.count("Completed") == 1 and "Failed" not in types
