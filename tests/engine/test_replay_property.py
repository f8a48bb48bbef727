"""Property: a run that crashes anywhere and is resumed from its journal ends with the same
journal as a run that never crashed (at-least-once activities, exactly-once journal)."""

from __future__ import annotations

import asyncio
import itertools
import json
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from agentlane.db import Database
from agentlane.store import EventStore
from runners.api import Outcome
from runners.engine import RetryPolicy, StepInfo, WorkflowContext, WorkflowRegistry
from tests.conftest import TEST_SHARDS
from tests.engine.conftest import Harness

RETRY = RetryPolicy(max_attempts=3, initial_interval=timedelta(milliseconds=1))
_sessions = itertools.count()

ops = st.lists(
    st.one_of(
        st.tuples(st.just("act"), st.integers(0, 3)),  # an activity failing its first n attempts
        st.tuples(st.just("emit"), st.just(0)),
        st.tuples(st.just("sleep"), st.just(0)),
    ),
    min_size=1,
    max_size=7,
)


class Crash(BaseException):
    """The process dies: nothing after this point is written, whatever was pending is lost."""


def workflow(program: list[tuple[str, int]], crash_at: int | None) -> Any:
    attempts = itertools.count()

    async def act(step: StepInfo, fails: int) -> dict[str, int]:
        if next(attempts) == crash_at:
            raise Crash()
        if step.attempt <= fails:
            raise ConnectionError(f"attempt {step.attempt}")
        return {"step": step.step, "attempt": step.attempt}

    async def wf(ctx: WorkflowContext, payload: dict[str, Any]) -> str:
        results = []
        for index, (kind, fails) in enumerate(program):
            if kind == "act":
                results.append(await ctx.activity(f"a{index}", act, fails, retry=RETRY))
            elif kind == "emit":
                ctx.emit("ToolCall", {"step": index, "callId": f"c{index}", "name": "t"})
            else:
                await ctx.sleep(timedelta(0))
        return json.dumps(results)

    return wf


def attempts_of(program: list[tuple[str, int]]) -> int:
    """Activity attempts the program makes until it ends (a step out of attempts ends it)."""
    total = 0
    for kind, fails in program:
        if kind == "act":
            total += min(fails + 1, RETRY.max_attempts)
            if fails >= RETRY.max_attempts:
                break
    return total


def normalized(events: list[Any]) -> list[tuple[str, dict[str, Any]]]:
    volatile = {"retryAt", "runnerId", "fireAt"}
    return [
        (e.type, {k: v for k, v in e.data.items() if k not in volatile})
        for e in events
        if e.type != "RunAccepted"
    ]


async def run_to_end(harness: Harness, program: list[tuple[str, int]], crash_at: int | None) -> Any:
    run = await harness.start(f"r-{harness.session}", "go")
    crashes = 0
    plan = crash_at
    while True:
        registry = WorkflowRegistry()
        registry.register("agent", "1", workflow(program, plan))
        try:
            outcome = await harness.advance(harness.executor(registry), run)
        except Crash:
            crashes += 1
            plan = None  # the restarted process does not crash again
            continue
        assert outcome in (Outcome.COMPLETED, Outcome.FAILED)
        return normalized(await harness.events(run)), crashes


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(program=ops, crash_at=st.integers(0, 12))
@example(program=[("emit", 0), ("act", 1)], crash_at=1)
@example(program=[("act", 0), ("sleep", 0), ("act", 2), ("emit", 0), ("act", 0)], crash_at=3)
def test_crash_and_replay_yield_the_journal_of_an_uninterrupted_run(
    loop_and_db: tuple[asyncio.AbstractEventLoop, Database],
    program: list[tuple[str, int]],
    crash_at: int,
) -> None:
    loop, db = loop_and_db
    store = EventStore(db, shards=TEST_SHARDS)
    n = next(_sessions)

    async def check() -> None:
        clean, _ = await run_to_end(Harness(db, store, session=f"p{n}-clean"), program, None)
        resumed, crashes = await run_to_end(
            Harness(db, store, session=f"p{n}-crash"), program, crash_at
        )
        assert crashes == (1 if crash_at < attempts_of(program) else 0)
        assert resumed == clean
        completions = [d["step"] for t, d in resumed if t in ("StepCompleted", "TimerFired")]
        assert len(completions) == len(set(completions))

    loop.run_until_complete(check())
