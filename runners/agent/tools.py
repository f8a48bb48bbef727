"""Tools the agent may call: typed arguments (pydantic → JSON schema for the model), a runner
function, and whether a human must approve each call first."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from agentlane.events import format_timestamp
from runners.agent.calculator import evaluate
from runners.engine import StepInfo

ToolFn = Callable[[StepInfo, Any], Awaitable[JsonValue]]


class Clock(Protocol):
    """The database's clock (the event store's ``now``): the one time every runner agrees on."""

    async def now(self) -> datetime: ...


@dataclass(frozen=True, slots=True)
class Tool:
    """``run(step, arguments)`` gets the step (its ``key`` is stable across retries: dedupe on it)
    and the validated arguments."""

    name: str
    description: str
    arguments: type[BaseModel]
    run: ToolFn
    requires_approval: bool = False
    #: How long a call may wait for its approval (None: for ever); a run's
    #: ``approvalTimeoutSeconds`` overrides it. At the deadline ``on_approval_timeout`` applies.
    approval_timeout: timedelta | None = None
    on_approval_timeout: Literal["deny", "approve"] = "deny"

    def schema(self) -> dict[str, Any]:
        """The OpenAI ``tools`` entry of this tool."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.arguments.model_json_schema(),
            },
        }


class ToolRegistry:
    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        self._schemas: list[dict[str, Any]] | None = None
        for tool in tools:
            self.register(tool)

    def register(self, tool: Tool) -> None:
        if tool.name in self._tools:
            raise ValueError(f"tool {tool.name!r} is already registered")
        self._tools[tool.name] = tool
        self._schemas = None

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def names(self) -> list[str]:
        return list(self._tools)

    def schemas(self) -> list[dict[str, Any]]:
        """The OpenAI ``tools`` entries, built once: pydantic's JSON schema generation cost more
        CPU than the rest of a run's engine work. Treat them as read-only."""
        if self._schemas is None:
            self._schemas = [tool.schema() for tool in self._tools.values()]
        return self._schemas


class NoArguments(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CalculatorArguments(BaseModel):
    model_config = ConfigDict(extra="forbid")

    expression: str = Field(
        min_length=1, max_length=500, description="Arithmetic, e.g. (2 + 3) * 4 / 5"
    )


class EmailArguments(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: str = Field(default="someone@example.com", max_length=320)
    subject: str = Field(default="(no subject)", max_length=500)
    body: str = Field(default="", max_length=10_000)


#: How long the demo tool's approval waits before it is denied (the console counts it down).
DEMO_APPROVAL_TIMEOUT = timedelta(minutes=5)


def demo_tools() -> list[Tool]:
    """``send_email``, gated by a human's approval (denied after five minutes without one), which
    records the email in its result and sends nothing: the approval flow to try in the dev
    console (``AGENTLANE_DEMO_TOOLS=1``)."""

    async def send_email(step: StepInfo, arguments: EmailArguments) -> JsonValue:
        return {"recorded": True, "sent": False, **arguments.model_dump()}

    return [
        Tool(
            "send_email", "Send an email (demo: records it, sends nothing).", EmailArguments,
            send_email, requires_approval=True, approval_timeout=DEMO_APPROVAL_TIMEOUT,
        )
    ]


def builtin_tools(clock: Clock) -> list[Tool]:
    """``current_time`` (from ``clock``: the database's, the one time every runner agrees on) and
    ``calculator``."""

    async def current_time(step: StepInfo, arguments: NoArguments) -> JsonValue:
        return {"utc": format_timestamp(await clock.now())}

    async def calculator(step: StepInfo, arguments: CalculatorArguments) -> JsonValue:
        return {"expression": arguments.expression, "value": evaluate(arguments.expression)}

    return [
        Tool("current_time", "The current date and time (UTC).", NoArguments, current_time),
        Tool(
            "calculator",
            "Evaluate an arithmetic expression (+ - * / // % ** and parentheses).",
            CalculatorArguments,
            calculator,
        ),
    ]
