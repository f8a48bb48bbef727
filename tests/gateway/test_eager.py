"""run_until_blocked: a coroutine that does not wait runs entirely in the caller (no task);
one that waits is finished by whoever awaits what is returned, with cancellation and errors
delivered to the coroutine as if it had been a task from the start."""

from __future__ import annotations

import asyncio

import pytest

from gateway.eager import run_until_blocked


async def test_a_coroutine_that_never_waits_finishes_inline() -> None:
    steps: list[str] = []

    async def quick() -> None:
        steps.append("ran")

    assert run_until_blocked(quick()) is None
    assert steps == ["ran"]


async def test_a_coroutine_that_waits_is_finished_by_a_task() -> None:
    steps: list[str] = []
    gate = asyncio.Event()

    async def slow() -> None:
        steps.append("before")
        await gate.wait()
        await asyncio.sleep(0)
        steps.append("after")

    rest = run_until_blocked(slow())
    assert rest is not None and steps == ["before"]
    task = asyncio.ensure_future(rest)
    await asyncio.sleep(0.01)
    assert steps == ["before"]
    gate.set()
    await asyncio.wait_for(task, 5)
    assert steps == ["before", "after"]


async def test_an_error_before_waiting_is_raised_to_the_caller() -> None:
    async def broken() -> None:
        raise OSError("gone")

    with pytest.raises(OSError, match="gone"):
        run_until_blocked(broken())


async def test_cancelling_the_task_cancels_the_coroutine_where_it_waits() -> None:
    seen: list[str] = []

    async def waits() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    rest = run_until_blocked(waits())
    assert rest is not None
    task = asyncio.ensure_future(rest)
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == ["cancelled"]


async def test_an_error_after_waiting_reaches_the_awaiting_task() -> None:
    gate = asyncio.Event()

    async def fails_later() -> None:
        await gate.wait()
        raise ValueError("late")

    rest = run_until_blocked(fails_later())
    assert rest is not None
    task = asyncio.ensure_future(rest)
    gate.set()
    with pytest.raises(ValueError, match="late"):
        await task
