"""Workflow code by (name, version), and the completion kinds the workflows record.

A run keeps the version it started with, forever. A workflow whose activities complete with an
event type of its own (not ``StepCompleted``) registers that :class:`Completion` here, so every
replay reads the journal the same way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from runners.engine._journal import ACTIVITY_TYPES, ENGINE_TYPES, Completion
from runners.engine.errors import UnknownWorkflow

if TYPE_CHECKING:
    from runners.engine.context import WorkflowContext

WorkflowFn = Callable[["WorkflowContext", dict[str, Any]], Awaitable[Any]]


class WorkflowRegistry:
    """Register each version of a workflow; new runs start on the latest one registered."""

    def __init__(self) -> None:
        self._code: dict[tuple[str, str], WorkflowFn] = {}
        self._latest: dict[str, str] = {}
        self._completions: dict[str, Completion] = {}

    def register(self, name: str, version: str, fn: WorkflowFn, *, latest: bool = True) -> None:
        if (name, version) in self._code:
            raise ValueError(f"workflow {name!r} version {version!r} is already registered")
        self._code[(name, version)] = fn
        if latest or name not in self._latest:
            self._latest[name] = version

    def register_completion(self, completion: Completion) -> None:
        """Let activities complete with ``completion.event_type`` (see :class:`Completion`)."""
        kind = completion.event_type
        if kind in ENGINE_TYPES or kind in ACTIVITY_TYPES:
            raise ValueError(f"{kind} is the engine's own event type")
        existing = self._completions.get(kind)
        if existing is not None and existing != completion:
            raise ValueError(f"completion {kind!r} is already registered differently")
        self._completions[kind] = completion

    @property
    def completions(self) -> Mapping[str, Completion]:
        return MappingProxyType(self._completions)

    def latest(self, name: str) -> str:
        try:
            return self._latest[name]
        except KeyError:
            raise UnknownWorkflow(name, None) from None

    def get(self, name: str, version: str) -> WorkflowFn:
        try:
            return self._code[(name, version)]
        except KeyError:
            raise UnknownWorkflow(name, version) from None

    def versions(self, name: str) -> list[str]:
        return [version for (each, version) in self._code if each == name]
