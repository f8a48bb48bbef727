"""Real processes: ``agentlane gateway`` drained by SIGTERM (1001, exit 0) and restarted, and
the live source's upstream (the projector, when it exists) SIGKILLed and restarted, while a
:class:`agentlane_client.SessionSocket` follows a session that keeps growing. The client ends
with every event exactly once, in order.

With ``AGENTLANE_BUS=pubsub`` the events reach the gateway through the projector and the
emulator (the projector republishes from its checkpoint after the kill: duplicates the gateway
drops); with ``AGENTLANE_BUS=postgres`` the gateway tails the event store itself and the projector
is not on its path at all.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from agentlane_client import SessionSocket

from agentlane.records import NewEvent
from agentlane.store import EventStore
from tests.conftest import TEST_SHARDS, as_app
from tests.fixtures.processes import Proc, spawn, stop_all

BATCHES, PER_BATCH = 60, 5


def _env(database_url: str, bus: str) -> dict[str, str]:
    return {
        "DATABASE_URL": as_app(database_url),
        "AGENTLANE_BUS": bus,
        "AGENTLANE_SHARDS": str(TEST_SHARDS),
        "AGENTLANE_AUTH": "none",
        "AGENTLANE_LOG_LEVEL": "INFO",
    }


@pytest.mark.slow
@pytest.mark.parametrize("bus", ["postgres", pytest.param("pubsub", marks=pytest.mark.pubsub)])
async def test_a_client_keeps_every_event_across_restarts(
    database_url: str, store: EventStore, tmp_path: Path, bus: str, request: pytest.FixtureRequest
) -> None:
    env = _env(database_url, bus)
    if bus == "pubsub":
        emulator = request.getfixturevalue("pubsub_emulator")
        env["PUBSUB_EMULATOR_HOST"] = emulator.host_port
        env["GOOGLE_CLOUD_PROJECT"] = f"gw-{uuid.uuid4().hex[:8]}"
    procs: list[Proc] = []
    try:
        procs.append(spawn("projector", ["projector"], env=env, log_dir=tmp_path))
        # Its readiness includes the topic it publishes to.
        await asyncio.to_thread(procs[-1].wait_http, "/readyz", 60)
        gateway = spawn("gateway", ["gateway", "--host", "127.0.0.1"], env=env, log_dir=tmp_path)
        procs.append(gateway)
        await asyncio.to_thread(gateway.wait_http, "/readyz", 60)
        client = SessionSocket(gateway.base_url, "s")
        received: list[int] = []
        total = BATCHES * PER_BATCH

        async def consume() -> None:
            async for event in client.events():
                received.append(event.event_id)
                if len(received) >= total:
                    return

        consumer = asyncio.create_task(consume())
        appended: list[int] = []
        for batch in range(BATCHES):
            events = [
                NewEvent("default", "s", "Token", {"text": f"{batch}.{i}", "index": i})
                for i in range(PER_BATCH)
            ]
            appended += [e.event_id for e in await store.append_batch(events)]
            if batch == BATCHES // 4:
                procs[0].kill()
                procs.append(spawn("projector-2", ["projector"], env=env, log_dir=tmp_path))
            if batch == BATCHES // 2:
                # Drain: the socket is closed with 1001, the process exits 0 ...
                assert await asyncio.to_thread(gateway.terminate, 30) == 0
                # ... and a new gateway takes the same address; the client finds it.
                gateway = spawn(
                    "gateway-2", ["gateway", "--host", "127.0.0.1"], env=env,
                    log_dir=tmp_path, port=gateway.port,
                )
                procs.append(gateway)
            await asyncio.sleep(0.02)
        await asyncio.wait_for(consumer, 60)
        await client.close()
        assert received == appended
        assert 1001 in client.close_codes
        assert client.connections >= 2
    finally:
        stop_all(procs)
