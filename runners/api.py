"""The seam between the runner process (leases, dispatch) and the workflow engine.

The runner decides *which* run to advance and *whether* it may (it holds the shard's lease); the
engine decides *what* advancing means (replay the journal, run the next steps, append with the
fence). Keeping this seam small lets either side be tested without the other.
"""

from __future__ import annotations

import asyncio
import enum
from typing import Protocol

from agentlane.leases import Fence
from agentlane.run_index import DueRun

__all__ = ["DueRun", "Outcome", "RunExecutor", "WorkflowUnavailable"]


class Outcome(enum.Enum):
    """Why :meth:`RunExecutor.advance` returned."""

    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SUSPENDED = "suspended"  # waits for a signal; run_index.wake_at is NULL
    SLEEPING = "sleeping"  # a durable timer; run_index.wake_at is the fire time
    YIELDED = "yielded"  # asked to stop (drain); run_index.wake_at is now(): anyone may resume
    FENCED = "fenced"  # the lease moved; nothing more was written


class WorkflowUnavailable(Exception):
    """This runner cannot run the run's journal, so it must not touch the run: nothing was
    written, and the run stays due for a runner that can (or for an operator to move it to a
    version that can: ``agentlane runs move-version``). ``reason``: ``missing``, no code for the
    run's workflow version here; ``diverged``, the code registered under that version does not
    reproduce the journal (a deploy changed it without a new version): a rollback resumes it."""

    def __init__(
        self, workflow: str, version: str | None, *, reason: str = "missing", detail: str = ""
    ) -> None:
        what = "no code here for" if reason == "missing" else "the code here diverges from"
        super().__init__(
            f"{what} workflow {workflow!r} version {version!r}" + (f": {detail}" if detail else "")
        )
        self.workflow = workflow
        self.version = version
        self.reason = reason


class RunExecutor(Protocol):
    async def advance(
        self, run: DueRun, fence: Fence, *, wake: asyncio.Event, stop: asyncio.Event
    ) -> Outcome:
        """Replay the run's journal and run it until it ends, waits, or is told to stop.

        ``wake`` is set by the runner when a command arrives for this run (cancel, signal);
        ``stop`` is set on drain: finish the step in flight, start no new one, return YIELDED.
        Every append carries ``fence``; the engine updates ``run_index`` in the same transaction
        as the events that change the run's status or wake time. Raises WorkflowUnavailable,
        having written nothing, when this process lacks the run's workflow version.
        """
        ...
