"""Errors of the workflow engine.

    AgentlaneError
    └── EngineError                 the engine could not run a workflow as written
        ├── NonDeterminismError     code and journal disagree at a step (the run fails loudly)
        ├── UnknownWorkflow         no registered code for a run's (name, version)
        ├── ActivityError           an activity failed for good (non-retryable, or attempts spent)
        ├── WorkflowCancelled       raised into the workflow at its current await on cancel
        └── JournalConflict         another writer completed this step first (nothing written)

Control flow that unloads a run (a timer, a signal wait, a drain, a lost lease) travels as
``_Unload``, a BaseException, so a workflow's ``except Exception`` cannot swallow it.
"""

from __future__ import annotations

from agentlane.errors import AgentlaneError


class EngineError(AgentlaneError):
    """Root of the engine's errors."""


class NonDeterminismError(EngineError):
    """The workflow asked for a different step than the journal recorded at this position."""

    def __init__(self, execution_id: str, step: int, expected: str, got: str) -> None:
        super().__init__(
            f"non-determinism in {execution_id} at step {step}: "
            f"the journal recorded {expected!r}, the code asked for {got!r}"
        )
        self.execution_id = execution_id
        self.step = step
        self.expected = expected
        self.got = got


class UnknownWorkflow(EngineError):
    def __init__(self, name: str, version: str | None) -> None:
        super().__init__(f"no workflow registered as {name!r} version {version!r}")
        self.name = name
        self.version = version


class ActivityError(EngineError):
    """An activity failed for good; the workflow may catch it, else the run fails. ``attempts``
    counts its recorded failures (tries cut short by a crash are not among them)."""

    def __init__(self, name: str, step: int, attempts: int, error: str) -> None:
        super().__init__(
            f"activity {name!r} (step {step}) failed after {attempts} attempt(s): {error}"
        )
        self.name = name
        self.step = step
        self.attempts = attempts
        self.error = error


class WorkflowCancelled(EngineError):
    """The run was asked to stop (CancelRequested); raised at the workflow's current await."""

    def __init__(self, reason: str | None) -> None:
        super().__init__(reason or "cancelled")
        self.reason = reason


class JournalConflict(EngineError):
    """A completion for this step already exists: another writer got there first."""
