"""The engine's public surface is pinned (model: temporalio's tests/test_workflow_exports.py).

Workflow authors and the runner depend on exactly these names; the rest of the engine is private
(``runners.engine._*``). Adding a name is a decision (add it here too); removing or renaming one
breaks workflow code and must not happen by accident.
"""

from __future__ import annotations

import importlib
import pkgutil

import runners.engine

PUBLIC = [
    # Writing workflows
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

#: Modules a workflow author may import besides the package itself.
PUBLIC_MODULES = {"context", "errors", "retry"}


def test_the_public_names_are_exactly_these() -> None:
    assert runners.engine.__all__ == PUBLIC
    for name in PUBLIC:
        assert getattr(runners.engine, name) is not None, name


def test_every_other_module_is_private() -> None:
    modules = {info.name for info in pkgutil.iter_modules(runners.engine.__path__)}
    assert {m for m in modules if not m.startswith("_")} == PUBLIC_MODULES


def test_the_public_modules_export_only_public_names() -> None:
    for name in PUBLIC_MODULES:
        module = importlib.import_module(f"runners.engine.{name}")
        exported = getattr(module, "__all__", None)
        if exported is not None:
            assert set(exported) <= set(PUBLIC), (name, set(exported) - set(PUBLIC))
