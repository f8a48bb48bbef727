"""Tools as the model sees them, and the calculator that must never be an ``eval``."""

from __future__ import annotations

import pytest

from runners.agent.calculator import CalculatorError, evaluate
from runners.agent.tools import CalculatorArguments, ToolRegistry, builtin_tools


@pytest.mark.parametrize(
    ("expression", "value"),
    [("1 + 2 * 3", 7), ("(1 + 2) * 3", 9), ("7 / 2", 3.5), ("7 // 2", 3), ("-2 ** 3", -8),
     ("10 % 4", 2), ("2 ** 0.5 * 2 ** 0.5", pytest.approx(2.0)), ("1e3 + .5", 1000.5)],
)
def test_calculator_evaluates_arithmetic(expression: str, value: float) -> None:
    assert evaluate(expression) == value


@pytest.mark.parametrize(
    "expression",
    ["__import__('os').system('true')", "open('/etc/passwd')", "x + 1", "[1, 2]", "1 if 1 else 2",
     "(lambda: 1)()", "9 ** 9 ** 9", "10 ** 400", "1 / 0", "'a' * 3", "True + 1", "", "2 +",
     "(-1) ** 0.5", "1" * 600],
)
def test_calculator_refuses_anything_else(expression: str) -> None:
    with pytest.raises(CalculatorError):
        evaluate(expression)


def test_tool_arguments_become_a_json_schema() -> None:
    registry = ToolRegistry(builtin_tools(clock=None))  # type: ignore[arg-type]
    schemas = {s["function"]["name"]: s["function"] for s in registry.schemas()}
    assert set(schemas) == {"current_time", "calculator"}
    parameters = schemas["calculator"]["parameters"]
    assert parameters["required"] == ["expression"]
    assert parameters["properties"]["expression"]["type"] == "string"
    assert parameters["additionalProperties"] is False
    assert CalculatorArguments.model_validate({"expression": "1+1"}).expression == "1+1"
    with pytest.raises(ValueError, match="already registered"):
        registry.register(builtin_tools(clock=None)[0])  # type: ignore[arg-type]
