"""Fixtures for the infra tests: what the Pulumi program registers for each stack."""

from __future__ import annotations

import pytest

from tests.infra.infra_resources import StackRun, run_stacks

STACKS = ("dev", "staging", "prod")


@pytest.fixture(scope="session")
def stack_runs() -> dict[str, StackRun]:
    """Every stack's mocked run, made once per session (one process, ~10 s)."""
    return run_stacks(STACKS)


@pytest.fixture(params=STACKS)
def run(request: pytest.FixtureRequest, stack_runs: dict[str, StackRun]) -> StackRun:
    """One stack's mocked run; tests using it run once per stack."""
    return stack_runs[request.param]
