"""Garbage-collector policy for a process that holds many long-lived objects (the gateway's
sockets): they are frozen out of the collector's view, so a collection scans only young objects.

CPython's collector scans every tracked object on a full collection; a gateway with 10,000
sockets holds over a million of them, and a full collection then stops the loop for 0.3-1 s
(issue 21's profile). Frozen objects are still freed by reference counting when released; what
freezing costs is cyclic garbage among them, which waits for the next unfreeze: every
``full_every`` rounds the process unfreezes, collects everything once, and freezes again.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class GcPolicy:
    #: Allocations between young collections (CPython's default: 700).
    young_threshold: int = 10_000
    #: How often survivors are frozen.
    freeze_every_s: float = 30.0
    #: Every this many rounds, one full collection (the pause, and the bound on how long cyclic
    #: garbage among frozen objects is kept: 20 x 30 s = 10 minutes).
    full_every: int = 20

    @contextlib.asynccontextmanager
    async def applied(self) -> AsyncIterator[None]:
        """Apply the policy for the duration of the block (the process's lifetime)."""
        thresholds = gc.get_threshold()
        gc.set_threshold(self.young_threshold, thresholds[1], thresholds[2])
        gc.collect()
        gc.freeze()  # what start-up built (modules, pools, the app) is never scanned again
        task = asyncio.get_running_loop().create_task(self._rounds(), name="gc-policy")
        try:
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            gc.unfreeze()
            gc.set_threshold(*thresholds)

    async def _rounds(self) -> None:
        rounds = 0
        while True:
            await asyncio.sleep(self.freeze_every_s)
            rounds += 1
            if rounds % self.full_every == 0:
                gc.unfreeze()
                started = time.perf_counter()
                collected = gc.collect()
                logger.info(
                    "full garbage collection",
                    extra={"pause_ms": round((time.perf_counter() - started) * 1000, 1),
                           "collected": collected},
                )
            else:
                gc.collect(1)  # young cycles die here rather than being frozen
            gc.freeze()


DEFAULT_GC_POLICY = GcPolicy()
