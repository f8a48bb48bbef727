"""Record the golden histories: ``python -m tests.engine.golden.record [NAME ...]``.

Plays each scenario of :mod:`tests.engine.golden.scenarios` against the real engine on an
embedded Postgres (and, for ``loopback`` scenarios, the real openai SDK against the loopback
server), then writes the session's events as ``tests/engine/golden/<name>.json``. Re-record after a
deliberate change to what the agent journals, and say so in the commit: the replay test in CI
exists to catch the changes that were not deliberate.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from agentlane.cli.embedded_pg import FAST_UNSAFE_SETTINGS, EmbeddedPostgres
from agentlane.db import Database, open_database
from agentlane.migrate import migrate
from agentlane.run_index import DueRun
from agentlane.store import EventStore
from runners.engine import Executor
from tests.engine.conftest import Harness
from tests.engine.golden.scenarios import (
    GOLDEN_FORMAT,
    SCENARIOS,
    Advance,
    Cancel,
    Scenario,
    Signal,
    Start,
    agent_workflows,
)
from tests.fixtures.openai_server import OpenAIServer

HERE = Path(__file__).resolve().parent
SHARDS = 16


async def play(scenario: Scenario, db: Database, base_url: str) -> dict[str, Any]:
    """Run the scenario in a session of its own; the session's events and each run's outcome."""
    store = EventStore(db, shards=SHARDS)
    harness = Harness(db, store, tenant=scenario.name, session="golden")
    executor = Executor(
        store, harness.run_index, agent_workflows(scenario, store, base_url=base_url),
        metrics_registry=CollectorRegistry(),
    )
    runs: dict[str, DueRun] = {}
    outcomes: dict[str, str] = {}
    for action in scenario.actions:
        match action:
            case Start(run_id, message, budget):
                extra = {"budget": budget} if budget else {}
                runs[run_id] = await harness.start(run_id, message, **extra)
            case Advance(run_id):
                run = runs[run_id]
                outcomes[run.execution_id] = (await harness.advance(executor, run)).value
            case Signal(run_id, name, payload, call_id_suffix):
                run = runs[run_id]
                if call_id_suffix:
                    call = next(e for e in await harness.events(run) if e.type == "ToolCall")
                    name += call.data["callId"]
                await harness.signal(run, name, payload)
            case Cancel(run_id):
                await harness.cancel(runs[run_id])
    events = await store.read_session(harness.tenant, harness.session, limit=None)
    return {
        "format": GOLDEN_FORMAT,
        "scenario": scenario.name,
        "outcomes": outcomes,
        "events": [event.to_json() for event in events],
    }


async def record(names: set[str], url: str) -> None:
    async with open_database(url, name="golden", min_size=1, max_size=8) as db:
        for scenario in SCENARIOS:
            if names and scenario.name not in names:
                continue
            with OpenAIServer() as server:
                server.push(*scenario.replies)
                golden = await play(scenario, db, server.base_url)
            path = HERE / f"{scenario.name}.json"
            path.write_text(json.dumps(golden, indent=1, ensure_ascii=False) + "\n")
            sys.stdout.write(f"{path.name}: {len(golden['events'])} events, {golden['outcomes']}\n")


def main() -> int:
    parser = argparse.ArgumentParser(prog="record-golden", description=__doc__)
    parser.add_argument("names", nargs="*", help="scenarios to record (default: all)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="agentlane-golden-"))
    server = EmbeddedPostgres(root / "data", settings=FAST_UNSAFE_SETTINGS)
    server.start()
    try:
        migrate(server.url(), shards=SHARDS)
        asyncio.run(record(set(args.names), server.url()))
    finally:
        server.destroy()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
