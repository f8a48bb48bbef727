"""The gateway's GC policy: long-lived objects are frozen out of the collector's scans, young
cycles are collected before each freeze, and cyclic garbage among frozen objects is reclaimed at
the next full round (the policy's stated memory cost), after which everything is restored."""

from __future__ import annotations

import asyncio
import gc
import weakref

from agentlane.gc_policy import GcPolicy


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def _cycle() -> _Node:
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    return a


async def _until(condition: object, timeout_s: float = 10) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():  # type: ignore[operator]  # noqa: ASYNC110 - gc has no event
            await asyncio.sleep(0.01)


async def test_frozen_cycles_wait_for_the_full_round_and_settings_are_restored() -> None:
    thresholds = gc.get_threshold()
    policy = GcPolicy(young_threshold=50_000, freeze_every_s=0.05, full_every=1_000_000)
    async with policy.applied():
        assert gc.get_threshold()[0] == 50_000
        assert gc.get_freeze_count() > 0
        young = weakref.ref(_cycle())
        alive = _cycle()
        frozen_before = gc.get_freeze_count()
        await _until(lambda: gc.get_freeze_count() > frozen_before)
        assert young() is None, "a young cycle is collected, not frozen"
        garbage = weakref.ref(alive)
        del alive  # garbage now, but frozen
        gc.collect()  # a full collection does not look at frozen objects
        assert garbage() is not None, "a cycle frozen while alive is kept until a full round"
    assert gc.get_threshold() == thresholds
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert garbage() is None


async def test_a_full_round_reclaims_cycles_that_were_frozen() -> None:
    policy = GcPolicy(freeze_every_s=0.05, full_every=3)
    async with policy.applied():
        alive = _cycle()
        frozen_before = gc.get_freeze_count()
        await _until(lambda: gc.get_freeze_count() > frozen_before)
        garbage = weakref.ref(alive)
        del alive
        await _until(lambda: garbage() is None, timeout_s=10)
