"""A run stops at the server's model-call cap, through real processes: ``agentlane edge`` accepts
the run under ``AGENTLANE_CMD_MAX_MODEL_CALLS=1`` and a real ``agentlane runner`` (offline model)
fails it at its second model call instead of suspending it for a raise it cannot get."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import TEST_SHARDS, as_app
from tests.fixtures.processes import spawn, stop_all


@pytest.mark.slow
def test_a_run_stops_at_the_servers_model_call_cap(database_url: str, tmp_path: Path) -> None:
    env = {
        "DATABASE_URL": as_app(database_url), "AGENTLANE_SHARDS": str(TEST_SHARDS),
        "AGENTLANE_BUS": "postgres", "AGENTLANE_MODEL": "offline",
        "AGENTLANE_CMD_MAX_MODEL_CALLS": "1",
    }
    procs = [
        spawn("edge", ["edge", "--host", "127.0.0.1"], env=env, log_dir=tmp_path),
        spawn("runner", ["runner", "--host", "127.0.0.1"], env={**env, "POD_NAME": "runner-0"},
              log_dir=tmp_path),
    ]
    try:
        for proc in procs:
            proc.wait_http("/readyz", timeout_s=60)
        edge = procs[0].base_url
        # The offline model answers "calculate" with a tool call, then the answer: two calls.
        started = httpx.post(f"{edge}/agents/s/runs",
                             json={"runId": "r", "message": "calculate 6*7"}, timeout=10)
        assert started.status_code == 202, started.text
        execution = started.json()["executionId"]
        # Failed, not suspended: no budget signal could lift it past the cap it was accepted under.
        deadline = time.monotonic() + 60
        while (run := httpx.get(f"{edge}/runs/{execution}", timeout=10).json())["status"] in (
            "queued", "running", "suspended"
        ):
            assert time.monotonic() < deadline, run
            time.sleep(0.1)
        assert run["status"] == "failed", run
        assert "BudgetExhausted" in run["error"] and "1 calls" in run["error"]
    finally:
        stop_all(procs)
