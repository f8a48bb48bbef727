"""A runner process whose workflow the test controls: ``python -m tests.runners_process.harness``.

The runner, its leases, dispatch and the engine are the real ones (``agentlane.cli.runner``, the
engine's ``Executor``); only the registered workflow differs: its run message says how many
activities to run, how long each takes, and whether to sleep on a durable timer first, so crash
tests can hold runs mid-flight for as long as they need. Also the spawn helpers those tests share.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from agentlane.cli.embedded_pg import free_port
from agentlane.cli.runner import add_arguments, options_from, serve
from agentlane.db import Database
from agentlane.logs import configure_logging
from agentlane.run_index import RunIndex
from agentlane.settings import Settings
from agentlane.store import EventStore
from runners.api import RunExecutor
from runners.engine import Executor, StepInfo, WorkflowContext, WorkflowRegistry
from tests.conftest import as_app
from tests.fixtures.processes import Proc

REPO_ROOT = Path(__file__).resolve().parents[2]


def work_message(*, steps: int = 3, step_s: float = 0.05, sleep_s: float = 0.0) -> str:
    """The run message the test workflow understands."""
    return f"steps={steps} step_s={step_s} sleep_s={sleep_s}"


def _parse(message: str) -> dict[str, float]:
    return {key: float(value) for key, value in (part.split("=") for part in message.split())}


ATTEMPTS_DDL = (
    "CREATE TABLE IF NOT EXISTS test_step_attempts "
    "(key text NOT NULL, at timestamptz NOT NULL DEFAULT now())"
)


def build_test_executor(
    db: Database, settings: Settings, registry: CollectorRegistry
) -> RunExecutor:
    """The engine's executor with the test workflow registered as ``agent``.

    Each activity attempt records its step key in ``test_step_attempts`` (a side effect outside
    the journal), so tests can tell a step that ran twice from one that ran once.
    """

    async def work(info: StepInfo, seconds: float) -> dict[str, Any]:
        await asyncio.sleep(seconds)
        async with db.connection() as conn:
            await conn.execute("INSERT INTO test_step_attempts (key) VALUES (%s)", (info.key,))
        return {"step": info.step, "key": info.key}

    # HARNESS_STEP_NAME: what the activities are called; a deploy that renames them without a
    # new version is code that no longer replays the journals the old names wrote.
    step_name = os.environ.get("HARNESS_STEP_NAME", "step")

    async def steps_workflow(ctx: WorkflowContext, payload: dict[str, Any]) -> dict[str, Any]:
        spec = _parse(str(payload.get("message", "")))
        if spec.get("sleep_s", 0) > 0:
            await ctx.sleep(timedelta(seconds=spec["sleep_s"]))
        for index in range(int(spec.get("steps", 3))):
            await ctx.activity(f"{step_name}{index}", work, spec.get("step_s", 0.05))
        return {"answer": f"done {ctx.run.run_id}"}

    # The versions this runner has (HARNESS_VERSIONS, default test-1): the same code under each
    # name, as a deploy that renamed its version would have it; the last one is the newest.
    workflows = WorkflowRegistry()
    for version in os.environ.get("HARNESS_VERSIONS", "test-1").split(","):
        workflows.register("agent", version, steps_workflow)
    store = EventStore(db, shards=settings.shards)
    return Executor(
        store, RunIndex(db), workflows, metrics_registry=registry,
        code_version=settings.code_version,
    )


def runner_env(database_url: str, name: str, *, ttl_s: float = 3, **extra: str) -> dict[str, str]:
    return {
        "DATABASE_URL": as_app(database_url),
        "AGENTLANE_SHARDS": "16",
        "AGENTLANE_LEASE_TTL": str(ttl_s),
        "POD_NAME": name,
        "AGENTLANE_MODEL": "offline",
        "AGENTLANE_DB_POOL_MAX": "6",
        "AGENTLANE_LOG_LEVEL": "INFO",
        **extra,
    }


def spawn_runner(
    name: str,
    env: Mapping[str, str],
    log_dir: Path,
    *,
    harness: bool = True,
    args: tuple[str, ...] = (),
) -> Proc:
    """Start a runner: this harness (test workflow) or the real ``agentlane runner``."""
    port = free_port()
    full_env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "PYTHONUNBUFFERED": "1",
        "AGENTLANE_LOG_FORMAT": "json",
        "PORT": str(port),
        **env,
    }
    module = ["tests.runners_process.harness"] if harness else ["agentlane.cli", "runner"]
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    with log_path.open("ab") as log_file:
        popen = subprocess.Popen(
            [sys.executable, "-m", *module, "--poll-interval", "0.5", *args],
            env=full_env,
            cwd=REPO_ROOT,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return Proc(name=name, popen=popen, log_path=log_path, port=port, env=full_env)


def main() -> int:
    parser = argparse.ArgumentParser(prog="runner-harness")
    add_arguments(parser)
    args = parser.parse_args()
    settings = Settings.from_env()
    configure_logging(
        "runner", level=settings.log_level, json_lines=settings.log_format == "json"
    )
    return serve(settings, options_from(args, settings), build_test_executor, host="127.0.0.1")


if __name__ == "__main__":
    raise SystemExit(main())
