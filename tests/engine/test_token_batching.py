"""Streamed text under a slow write path: a run never queues more than one unwritten Token.

Through the real engine and store: an activity streams through the agent's ``TokenBatcher`` while
the store's commits come slowly (a long group-commit tick). Each Token must then wait for the one
before it to be written and carry everything streamed meanwhile, so a busy runner writes fewer,
larger events instead of a queue that grows; the text, its order and the indexes stay whole. With
the usual tick the same stream goes out about every 50 ms, as before.
"""

from __future__ import annotations

import asyncio
from typing import Any

from runners.agent.tokens import BATCH_INTERVAL_S, TokenBatcher
from runners.api import Outcome
from runners.engine import StepInfo, WorkflowContext, WorkflowRegistry
from tests.engine.conftest import Harness

WORDS = 60
PAUSE_S = 0.01
#: A commit every 0.4 s instead of every 25 ms tick.
SLOW_TICK_S = 0.4


def streaming(words: int) -> WorkflowRegistry:
    async def speak(step: StepInfo) -> str:
        batcher = TokenBatcher(step)
        for index in range(words):
            batcher.add(f"w{index} ")
            await asyncio.sleep(PAUSE_S)
        batcher.close()
        return "done"

    async def workflow(ctx: WorkflowContext, payload: dict[str, Any]) -> str:
        return str(await ctx.activity("model", speak))

    registry = WorkflowRegistry()
    registry.register("agent", "1", workflow)
    return registry


async def tokens_of_a_stream(harness: Harness, run_id: str) -> list[dict[str, Any]]:
    run = await harness.start(run_id, "talk")
    outcome = await harness.advance(harness.executor(streaming(WORDS)), run)
    assert outcome is Outcome.COMPLETED
    return [event.data for event in await harness.events(run) if event.type == "Token"]


def assert_whole(tokens: list[dict[str, Any]]) -> None:
    assert [token["index"] for token in tokens] == list(range(len(tokens)))
    assert "".join(token["text"] for token in tokens) == "".join(f"w{i} " for i in range(WORDS))
    assert {(token["step"], token["attempt"]) for token in tokens} == {(0, 1)}


async def test_a_slow_commit_holds_the_next_token_and_loses_nothing(harness: Harness) -> None:
    harness.store.committer.tick_s = SLOW_TICK_S
    tokens = await tokens_of_a_stream(harness, "slow")

    assert_whole(tokens)
    streamed_s = WORDS * PAUSE_S
    # Without holding, a Token would go out every 50 ms and queue behind the slow commits.
    assert len(tokens) <= streamed_s / SLOW_TICK_S + 3 < streamed_s / BATCH_INTERVAL_S / 2


async def test_a_quick_commit_streams_about_every_batch_interval(harness: Harness) -> None:
    tokens = await tokens_of_a_stream(harness, "quick")

    assert_whole(tokens)
    assert len(tokens) >= WORDS * PAUSE_S / BATCH_INTERVAL_S / 3
