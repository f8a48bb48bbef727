"""Jittered exponential backoff ("full jitter"): many clients retrying do not synchronise."""

from __future__ import annotations

import asyncio
import random


class Backoff:
    """Delays of ``uniform(0, min(maximum_s, initial_s * 2**attempt))``; :meth:`reset` after a
    success."""

    def __init__(self, *, initial_s: float = 0.1, maximum_s: float = 10.0) -> None:
        self.initial_s = initial_s
        self.maximum_s = maximum_s
        self.attempt = 0

    def reset(self) -> None:
        self.attempt = 0

    def next_delay(self) -> float:
        ceiling = min(self.maximum_s, self.initial_s * (2**self.attempt))
        self.attempt += 1
        return random.uniform(0, ceiling)

    async def sleep(self) -> None:
        await asyncio.sleep(self.next_delay())
