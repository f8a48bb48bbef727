"""Racing POSTs to two command-service processes on one database never pass a tenant's
active-run cap: the cap is the database's, not a process's."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from tests.command_service.conftest import SECRET, make_token
from tests.conftest import TEST_SHARDS, as_app
from tests.fixtures.processes import spawn, stop_all

CAP = 5


@pytest.mark.slow
def test_racing_posts_to_two_processes_never_pass_the_cap(
    database_url: str, tmp_path: Path
) -> None:
    env = {
        "DATABASE_URL": as_app(database_url), "AGENTLANE_SHARDS": str(TEST_SHARDS),
        "AGENTLANE_AUTH": "jwt", "AGENTLANE_JWT_SECRET": SECRET,
        "AGENTLANE_JWT_AUDIENCE": "agentlane-tests",
        "AGENTLANE_CMD_MAX_ACTIVE_RUNS": str(CAP), "AGENTLANE_CMD_RATE": "0",
        "AGENTLANE_CMD_LATENCY_TARGET": "0", "AGENTLANE_CMD_TENANT_SHARE": "1",
    }
    procs = [
        spawn(f"command-service-{i}", ["command-service", "--host", "127.0.0.1"], env=env,
              log_dir=tmp_path)
        for i in range(2)
    ]
    try:
        for proc in procs:
            proc.wait_http("/readyz", timeout_s=60)
        headers = {"Authorization": f"Bearer {make_token('racer')}"}

        async def race() -> list[int]:
            async with httpx.AsyncClient(timeout=30) as client:
                answers = await asyncio.gather(*(
                    client.post(
                        f"{procs[n % 2].base_url}/agents/s{n}/runs",
                        json={"runId": f"r{n}", "message": "m"}, headers=headers,
                    )
                    for n in range(40)
                ))
            return [answer.status_code for answer in answers]

        statuses = asyncio.run(race())
        assert statuses.count(202) == CAP, statuses
        assert statuses.count(429) == 40 - CAP
    finally:
        stop_all(procs)
