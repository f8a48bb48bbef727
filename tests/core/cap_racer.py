"""One racing process of ``test_active_run_cap``: ``python -m tests.core.cap_racer URL NAME N CAP
START_AT`` starts N runs of tenant ``racers`` at once (one session each) when the wall clock
reaches START_AT, then prints how many were accepted and refused as one JSON line."""

from __future__ import annotations

import asyncio
import json
import sys
import time

from agentlane.commands import Commands
from agentlane.db import open_database
from agentlane.errors import TooManyActiveRuns
from agentlane.run_index import ActiveRunCap, RunIndex
from agentlane.store import EventStore
from tests.conftest import TEST_SHARDS

TENANT = "racers"


async def race(url: str, name: str, count: int, cap: int, start_at: float) -> dict[str, int]:
    async with open_database(url, name=name, min_size=count, max_size=count) as db:
        commands = Commands(
            EventStore(db, shards=TEST_SHARDS), RunIndex(db), cap=ActiveRunCap(cap, 1.0)
        )
        await asyncio.sleep(max(0.0, start_at - time.time()))

        async def start(n: int) -> bool:
            try:
                await commands.start_run(
                    tenant_id=TENANT, session_id=f"{name}-{n}", run_id=f"{name}-{n}",
                    message="race",
                )
            except TooManyActiveRuns:
                return False
            return True

        outcomes = await asyncio.gather(*(start(n) for n in range(count)))
    return {"accepted": sum(outcomes), "refused": len(outcomes) - sum(outcomes)}


if __name__ == "__main__":
    url, name, count, cap, start_at = sys.argv[1:]
    result = asyncio.run(race(url, name, int(count), int(cap), float(start_at)))
    sys.stdout.write(json.dumps(result) + "\n")
