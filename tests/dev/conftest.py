"""Fixtures of the tests that run ``agentlane dev`` as a user does."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentlane.cli.embedded_pg import EmbeddedPostgres
from tests.dev.model_server import ModelServer
from tests.dev.test_dev_e2e import DevStack
from tests.fixtures.processes import stop_all


@pytest.fixture
def model_server() -> Iterator[ModelServer]:
    server = ModelServer(hold_marker="slow")
    server.start()
    yield server
    server.stop()


def stop_stack(stack: DevStack) -> None:
    """SIGTERM the stack (SIGKILL if it does not stop) and print its log's tail (shown when a
    test failed)."""
    if stack.proc.alive():
        stack.proc.signal(signal.SIGTERM)
        try:
            stack.proc.popen.wait(timeout=20)
        except subprocess.TimeoutExpired:
            stop_all([stack.proc])
    print(f"---- {stack.proc.name} log (tail) ----\n{stack.proc.log()[-6000:]}")


def stop_database(data_dir: Path) -> None:
    """A stack that had to be SIGKILLed leaves its database running."""
    EmbeddedPostgres(data_dir / "pgdata", port=1).stop(mode="immediate")


@pytest.fixture
def stacks() -> Iterator[list[DevStack]]:
    """The stacks a test started, stopped after it (then their databases, once per data dir)."""
    started: list[DevStack] = []
    yield started
    for stack in started:
        stop_stack(stack)
    for data_dir in {stack.data_dir for stack in started}:
        stop_database(data_dir)
