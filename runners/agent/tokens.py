"""Batches streamed model text into ``Token`` events: about every 50 ms or 32 tokens, never one
event per token."""

from __future__ import annotations

import asyncio

from runners.engine import StepInfo

BATCH_TOKENS = 32
BATCH_INTERVAL_S = 0.05


class TokenBatcher:
    """Collects deltas; writes a Token event when 32 arrived or 50 ms passed since the first."""

    def __init__(self, step: StepInfo) -> None:
        self._step = step
        self._parts: list[str] = []
        self._index = 0
        self._timer: asyncio.TimerHandle | None = None

    def add(self, text: str) -> None:
        if not text:
            return
        self._parts.append(text)
        if len(self._parts) >= BATCH_TOKENS:
            self._emit(urgent=True)
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(
                BATCH_INTERVAL_S, self._emit, True
            )

    def close(self) -> None:
        """The stream ended: the rest goes out with the step's completion, in the same write."""
        self._emit(urgent=False)

    def discard(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _emit(self, urgent: bool) -> None:
        self.discard()
        if not self._parts:
            return
        text = "".join(self._parts)
        self._parts = []
        self._step.stream(
            "Token",
            {"text": text, "index": self._index, "step": self._step.step,
             "attempt": self._step.attempt},
            urgent=urgent,
        )
        self._index += 1
