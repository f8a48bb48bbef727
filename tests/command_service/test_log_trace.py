"""A request's log lines carry its W3C trace in Cloud Logging's fields: ``agentlane
command-service`` as a real process behind its real uvicorn, a POST with a ``traceparent``; and
its pool's statistics are at ``/metrics``."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import TEST_SHARDS, as_app
from tests.fixtures.processes import spawn, stop_all

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = f"00-{TRACE}-00f067aa0ba902b7-01"


@pytest.mark.slow
def test_the_lines_a_request_logs_carry_its_trace(database_url: str, tmp_path: Path) -> None:
    env = {
        "DATABASE_URL": as_app(database_url), "AGENTLANE_SHARDS": str(TEST_SHARDS),
        "AGENTLANE_LOG_LEVEL": "DEBUG", "GOOGLE_CLOUD_PROJECT": "agentlane-test",
    }
    proc = spawn("command-service", ["command-service", "--host", "127.0.0.1"], env=env,
                 log_dir=tmp_path)
    try:
        proc.wait_http("/healthz")
        traced = httpx.post(
            f"{proc.base_url}/agents/s1/runs", json={"runId": "r1", "message": "hi"},
            headers={"traceparent": PARENT}, timeout=10,
        )
        plain = httpx.post(
            f"{proc.base_url}/agents/s2/runs", json={"runId": "r2", "message": "hi"}, timeout=10
        )
        assert traced.status_code == plain.status_code == 202
        # The process's pool reports at /metrics (agentlane.pool_metrics).
        metrics = httpx.get(f"{proc.base_url}/metrics", timeout=10).text
        assert 'agentlane_db_pool_requests_total{pool="command-service"}' in metrics
        assert 'agentlane_db_pool_connections{pool="command-service"}' in metrics
        deadline = time.monotonic() + 10
        while True:
            accepted = [
                line for line in map(_json, proc.log().splitlines())
                if line and line.get("message") == "run accepted"
            ]
            if len(accepted) == 2 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    finally:
        stop_all([proc])
    by_session = {line["session"]: line for line in accepted}
    first, second = by_session["s1"], by_session["s2"]
    assert first["logging.googleapis.com/trace"] == f"projects/agentlane-test/traces/{TRACE}"
    assert first["logging.googleapis.com/spanId"] == "00f067aa0ba902b7"
    assert first["logging.googleapis.com/trace_sampled"] is True
    assert first["severity"] == "DEBUG" and first["execution"] == traced.json()["executionId"]
    assert "logging.googleapis.com/trace" not in second


def _json(text: str) -> dict[str, object] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
