"""Workflow code by (name, version): a run keeps the version it started with, forever."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from runners.engine.errors import UnknownWorkflow

if TYPE_CHECKING:
    from runners.engine.context import WorkflowContext

WorkflowFn = Callable[["WorkflowContext", dict[str, Any]], Awaitable[Any]]


class WorkflowRegistry:
    """Register each version of a workflow; new runs start on the latest one registered."""

    def __init__(self) -> None:
        self._code: dict[tuple[str, str], WorkflowFn] = {}
        self._latest: dict[str, str] = {}

    def register(self, name: str, version: str, fn: WorkflowFn, *, latest: bool = True) -> None:
        if (name, version) in self._code:
            raise ValueError(f"workflow {name!r} version {version!r} is already registered")
        self._code[(name, version)] = fn
        if latest or name not in self._latest:
            self._latest[name] = version

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
