"""The durable workflow engine: journal, replay, activities, timers, signals, cancellation.

It knows nothing of any particular workflow: a workflow registers its code (and any completion
event of its own) with a :class:`WorkflowRegistry`; an :class:`Executor` advances runs of the
registered workflows for the runner; a :class:`Replayer` re-runs a recorded history against the
code to prove the code still agrees with it. The public surface is pinned by
``tests/engine/test_engine_exports.py``.
"""

from __future__ import annotations

from runners.engine._executor import Executor
from runners.engine._journal import Completion, Signal
from runners.engine._registry import WorkflowFn, WorkflowRegistry
from runners.engine._replayer import Replayer, ReplayResult
from runners.engine.context import RunInfo, StepInfo, WorkflowContext
from runners.engine.errors import (
    ActivityError,
    EngineError,
    JournalConflict,
    NonDeterminismError,
    UnknownWorkflow,
    WorkflowCancelled,
)
from runners.engine.retry import NO_RETRY, NonRetryable, RetryLater, RetryPolicy

__all__ = [
    # Writing workflows: what workflow code receives and calls
    "Completion",
    "RunInfo",
    "Signal",
    "StepInfo",
    "WorkflowContext",
    "WorkflowFn",
    # Retries of activities
    "NO_RETRY",
    "NonRetryable",
    "RetryLater",
    "RetryPolicy",
    # Running workflows
    "Executor",
    "WorkflowRegistry",
    # Checking recorded histories against the code
    "ReplayResult",
    "Replayer",
    # Errors
    "ActivityError",
    "EngineError",
    "JournalConflict",
    "NonDeterminismError",
    "UnknownWorkflow",
    "WorkflowCancelled",
]
