"""Batches streamed model text into ``Token`` events: about every 50 ms or 32 tokens, never one
event per token; and never more than one unwritten at a time when the runner is busy."""

from __future__ import annotations

import asyncio

from runners.engine import StepInfo

BATCH_TOKENS = 32
BATCH_INTERVAL_S = 0.05


class TokenBatcher:
    """Collects deltas; writes a Token event when 32 arrived or 50 ms passed since the first.

    While a Token this run streamed is still waiting for its commit, the next one is held and
    the text keeps collecting, to go out as one event when the earlier ones are written. An idle
    runner commits within a tick (25 ms), so nothing changes there; a busy one writes fewer,
    larger events instead of a queue of small ones that grows with every stream (each event
    costs the runner's one loop the same however much text it holds).
    """

    def __init__(self, step: StepInfo) -> None:
        self._step = step
        self._parts: list[str] = []
        self._index = 0
        self._timer: asyncio.TimerHandle | None = None
        self._held = False
        self._closed = False

    def add(self, text: str) -> None:
        if not text or self._closed:
            return
        self._parts.append(text)
        if self._held:
            return
        if len(self._parts) >= BATCH_TOKENS:
            self._due()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(BATCH_INTERVAL_S, self._due)

    def close(self) -> None:
        """The stream ended: the rest goes out with the step's completion, in the same write."""
        self._emit(urgent=False)
        self._closed = True

    def _due(self) -> None:
        self._cancel_timer()
        if self._step.after_stream_written(self._release):
            self._held = True
            return
        self._emit(urgent=True)

    def _release(self) -> None:
        """What streamed before is written: send what collected meanwhile (unless closed)."""
        self._held = False
        if not self._closed:
            self._emit(urgent=True)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _emit(self, urgent: bool) -> None:
        self._cancel_timer()
        if not self._parts or self._closed:
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
