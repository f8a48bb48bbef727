"""A model key rotated under a running runner: the key is a mounted file (OPENAI_API_KEY_FILE),
read again when it changes, so the runs after a rotation use the new key, the old one can be
revoked, and nothing restarts. A real `agentlane runner` against a loopback OpenAI-compatible
server that accepts only the keys it is told are valid."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from agentlane.commands import Commands
from agentlane.db import open_database
from agentlane.run_index import RunIndex
from agentlane.store import EventStore
from tests.conftest import TEST_SHARDS
from tests.fixtures.openai_server import OpenAIServer, Reply
from tests.fixtures.processes import stop_all
from tests.runners_process.harness import runner_env, spawn_runner
from tests.runners_process.journal_checks import query, wait_for

RUNS = 5


async def start_runs(url: str, prefix: str, count: int) -> None:
    async with open_database(url, name="test-commands", min_size=1, max_size=1) as db:
        commands = Commands(EventStore(db, shards=TEST_SHARDS), RunIndex(db))
        for i in range(count):
            session = f"{prefix}-{i}"
            await commands.start_run(
                tenant_id="t", session_id=session, run_id=session, message="hi"
            )


def write_key(path: Path, key: str) -> None:
    """As the kubelet updates a mounted Secret: the new file replaces the old one at once."""
    staged = path.with_suffix(".new")
    staged.write_text(key + "\n")
    os.replace(staged, path)


@pytest.mark.slow
def test_a_key_rotated_under_load_fails_no_run_and_restarts_nothing(
    database_url: str, tmp_path: Path
) -> None:
    valid = {"sk-old"}

    def answer() -> Reply:
        used = server.requests[-1].headers.get("authorization", "")
        if used.removeprefix("Bearer ") not in valid:
            return Reply.error(401, message="invalid api key")
        return Reply.answer("fine")

    server = OpenAIServer(choose=answer)
    key_file = tmp_path / "openai-api-key"
    write_key(key_file, "sk-old")
    with server:
        env = runner_env(
            database_url, "runner",
            AGENTLANE_MODEL="gpt-test", OPENAI_BASE_URL=server.base_url,
            OPENAI_API_KEY_FILE=str(key_file),
        )
        runner = spawn_runner("runner", env, tmp_path, harness=False)
        try:
            def outcomes(prefix: str) -> list[str]:
                rows = query(
                    database_url,
                    "SELECT event_type FROM agent_events WHERE session_id LIKE %s "
                    "AND event_type IN ('Completed', 'Failed', 'Cancelled')",
                    (f"{prefix}-%",),
                )
                return [row[0] for row in rows]

            def used(key: str) -> bool:
                return any(
                    r.headers.get("authorization") == f"Bearer {key}" for r in server.requests
                )

            asyncio.run(start_runs(database_url, "before", RUNS))
            wait_for(lambda: used("sk-old"), 60, "a call with the old key", [runner])
            # The rotation, in the runbook's order: the new key becomes valid at the provider,
            # the Secret (here the file) changes while runs are in flight...
            valid.add("sk-new")
            write_key(key_file, "sk-new")
            asyncio.run(start_runs(database_url, "during", RUNS))
            wait_for(lambda: used("sk-new"), 60, "a call with the new key", [runner])
            # ...and the old key is revoked once the new one is seen in use.
            valid.discard("sk-old")
            revoked_at = len(server.requests)
            asyncio.run(start_runs(database_url, "after", RUNS))
            for prefix in ("before", "during", "after"):
                wait_for(lambda p=prefix: len(outcomes(p)) == RUNS, 60, f"the {prefix} runs",
                         [runner])
                assert outcomes(prefix) == ["Completed"] * RUNS, (prefix, outcomes(prefix))
            assert runner.popen.poll() is None, "no restart"
        finally:
            stop_all([runner])
    keys = [r.headers.get("authorization") for r in server.requests]
    assert keys[0] == "Bearer sk-old" and keys[-1] == "Bearer sk-new", keys
    assert "Bearer sk-old" not in keys[revoked_at:], "the old key after it was revoked"
