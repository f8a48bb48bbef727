"""A command that arrives while a run unloads wakes it again (issue 13, bug 1).

The run decides to suspend on the journal as it stands; while the unload's writes wait (here: on
the shard row, held by another session), a signal or cancel is appended and the watcher reads it
into the journal. The unload must judge "commands waiting" from the decision's position, not from
the journal's end, or the run is left suspended with no wake-up, forever."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest

from runners.api import Outcome
from runners.engine import StepInfo, WorkflowContext, WorkflowRegistry
from runners.engine._runtime import FLUSH_INTERVAL_S
from tests.engine.conftest import Harness


@pytest.mark.parametrize("command", ["signal", "cancel"])
async def test_a_command_read_while_the_unload_waits_is_not_lost(
    harness: Harness, database_url: str, command: str
) -> None:
    wake = asyncio.Event()
    locked = asyncio.Event()
    release = asyncio.Event()

    async def hold_shard_row() -> None:
        async with await psycopg.AsyncConnection.connect(database_url) as conn:
            await conn.execute(
                "SELECT 1 FROM cluster_shards WHERE shard_id = %s FOR UPDATE", (harness.shard,)
            )
            locked.set()
            await release.wait()

    async def lock_then_return(step: StepInfo) -> str:
        holder.append(asyncio.create_task(hold_shard_row()))
        await locked.wait()
        return "locked"

    async def pause(step: StepInfo) -> str:
        await asyncio.sleep(FLUSH_INTERVAL_S * 1.5)  # the flusher meanwhile writes step 0
        return "paused"

    async def wf(ctx: WorkflowContext, payload: dict[str, Any]) -> Any:
        await ctx.activity("lock", lock_then_return)
        await ctx.activity("pause", pause)
        return (await ctx.wait_signal("go")).payload  # suspends: no signal yet

    holder: list[asyncio.Task[None]] = []
    registry = WorkflowRegistry()
    registry.register("agent", "1", wf)
    run = await harness.start("r1", "go")
    advance = asyncio.create_task(harness.advance(harness.executor(registry), run, wake=wake))
    await locked.wait()
    # The flusher's write of step 0 waits on the shard row; the workflow decides to suspend and
    # its unload waits for that write to end, while the watcher still runs.
    await asyncio.sleep(FLUSH_INTERVAL_S * 2.5)
    if command == "signal":
        await harness.signal(run, "go", "late")
    else:
        await harness.cancel(run, "changed my mind")
    wake.set()  # what the runner's dispatcher does on the command's NOTIFY
    await asyncio.sleep(0.3)  # the watcher reads the command into the journal
    release.set()
    await holder[0]
    outcome = await advance
    if command == "signal":
        assert outcome is Outcome.COMPLETED
        assert (await harness.events(run))[-1].data["answer"] == "late"
    else:
        assert outcome is Outcome.CANCELLED
    assert await harness.index_row(run) is None
