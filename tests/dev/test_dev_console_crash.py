"""The console through a crash, as a user sees it: ``agentlane dev`` streams an answer word by
word to the browser console in headless Chromium, every runner is SIGKILLed mid-stream, and once
a restarted runner has taken the run over, the page shows the answer once, whole: the lost
attempt's words are dropped, never left in front of the retry's (docs/contract.md, "Streams").
Then the console's Operations view shows where the shards went: every shard held again, by a
restarted runner under a new fencing token, flagged as moved. The screenshots are kept in
test-artifacts/.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from agentlane.cli.embedded_pg import free_port
from tests.dev.test_dev_e2e import DevStack, _start
from tests.fixtures.browser import BROWSER_DIR, DRIVER_ENV, drive_ops_view, needs_browser

WORDS = 60

pytestmark = needs_browser


def _tokens(http: httpx.Client, session: str) -> list[dict[str, object]]:
    page = http.get(f"/sessions/{session}/events", params={"limit": 1000}).json()
    return [e for e in page["events"] if e["type"] == "Token"]


@pytest.mark.slow
def test_the_console_shows_the_answer_once_when_every_runner_dies_mid_stream(
    tmp_path: Path, repo_root: Path, stacks: list[DevStack]
) -> None:
    artifacts = repo_root / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    screenshot = artifacts / "dev-console-runners-killed.png"
    env = {"AGENTLANE_BUS": "postgres", "AGENTLANE_LEASE_TTL": "3",
           "AGENTLANE_OFFLINE_PACE": "20"}
    stack = _start(tmp_path / ".agentlane", free_port(), env, tmp_path, "dev")
    stacks.append(stack)
    session = "crash-1"
    message = " ".join(f"word{i}" for i in range(WORDS))
    driver = subprocess.Popen(
        ["node", str(BROWSER_DIR / "drive_console.mjs"), f"{stack.http}/?session={session}",
         str(screenshot), message],
        cwd=BROWSER_DIR, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=DRIVER_ENV,
    )
    try:
        with httpx.Client(base_url=stack.http, timeout=10) as http:
            before = _holders(http)
            deadline = time.monotonic() + 60
            while len(_tokens(http, session)) < 5:
                assert time.monotonic() < deadline, "the answer never started streaming"
                time.sleep(0.05)
            # Every runner, mid-stream: no runner is left to finish the attempt.
            for name in ("runner-0", "runner-1"):
                os.kill(stack.pid_of(name), signal.SIGKILL)
        stdout, stderr = driver.communicate(timeout=120)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 0, stderr[-3000:]
    shown = json.loads(stdout.strip().splitlines()[-1])
    answer = f"(offline) You said: {message}"
    assert shown["text"] == answer, shown["text"]
    assert shown["resets"] >= 1, "the lost attempt's words were never dropped"
    with httpx.Client(base_url=stack.http, timeout=10) as http:
        events = http.get(f"/sessions/{session}/events", params={"limit": 1000}).json()["events"]
    abandoned = [e for e in events if e["type"] == "StepFailed" and e["data"].get("abandoned")]
    assert abandoned and abandoned[0]["data"]["attempt"] == 1
    assert screenshot.stat().st_size > 0

    # The Operations view after the kill: the shards changed hands, and the page says so.
    ops_screenshot = artifacts / "dev-console-operations-after-kill.png"
    ops = drive_ops_view(f"{stack.http}/?refresh=1#operations", ops_screenshot)
    assert ops["tiles"]["shards"] == "64 / 64"
    killed = {runner for runner, _ in before.values()}
    for shard, holder, token, *_ in ops["shards"]:
        _, was_token = before[int(shard)]
        assert holder not in killed and int(token) > was_token, (shard, holder, token)
        assert ops["shardFlags"].get(shard) == "moved", (shard, ops["shardFlags"].get(shard))
    assert ops_screenshot.stat().st_size > 0


def _holders(http: httpx.Client) -> dict[int, tuple[str, int]]:
    """Each shard's holder and fencing token, once both runners hold all of them."""
    deadline = time.monotonic() + 30
    while True:
        shards = http.get("/ops/overview").json()["shards"]
        if shards["held"] == shards["count"]:
            return {row["shard"]: (row["runnerId"], row["leaseToken"]) for row in shards["rows"]}
        assert time.monotonic() < deadline, shards
        time.sleep(0.1)
