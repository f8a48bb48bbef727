"""``replay export`` piped to a file is, line for line, the events the HTTP API returns."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from agentlane.store import EventStore
from tests.conftest import TEST_SHARDS
from tests.fixtures.processes import spawn, stop_all
from tests.replay.conftest import Seeded


def compact(event: dict[str, object]) -> str:
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"))


async def test_export_of_a_session_equals_the_http_api(
    database_url: str, store: EventStore, seeded: Seeded, tmp_path: Path
) -> None:
    api = spawn(
        "command-service", ["command-service", "--host", "127.0.0.1"],
        env={"DATABASE_URL": database_url, "AGENTLANE_SHARDS": str(TEST_SHARDS),
             "AGENTLANE_AUTH": "none"},
        log_dir=tmp_path,
    )
    try:
        api.wait_http("/readyz", timeout_s=60)
        response = await asyncio.to_thread(
            httpx.get, f"{api.base_url}/sessions/s2/events", params={"limit": 1000}
        )
    finally:
        stop_all([api])
    assert response.status_code == 200, response.text
    from_api = [compact(event) for event in response.json()["events"]]

    exported = tmp_path / "s2.ndjson"
    with exported.open("w") as out:  # a file, not a terminal: no progress bar in the output
        result = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "agentlane.cli", "replay", "export",
             "--tenant", "default", "--session", "s2"],
            env={"PATH": os.environ["PATH"], "DATABASE_URL": database_url}, stdout=out,
            stderr=subprocess.PIPE, text=True, timeout=60, check=False,
        )
    assert result.returncode == 0 and result.stderr == ""
    lines = exported.read_text().splitlines()
    assert len(lines) == 13
    assert lines == from_api
    # And the API serializes exactly what the store reads.
    stored = await store.read_session("default", "s2")
    assert lines == [compact(event.to_json()) for event in stored]


async def test_export_filters_by_tenant_and_time(
    store: EventStore, seeded: Seeded, database_url: str
) -> None:
    from agentlane.replay.export import export_lines
    from agentlane.store.audit import EventFilter, snapshot

    url = database_url
    events = await store.read_session("default", "s1")
    cut = events[10].created_at
    with snapshot(url) as conn:
        everything = list(export_lines(conn, EventFilter()))
        acme = list(export_lines(conn, EventFilter(tenant_id="acme")))
        recent = list(
            export_lines(conn, EventFilter(tenant_id="default", session_id="s1", since=cut))
        )
    assert len(everything) == 37
    assert [json.loads(line)["tenantId"] for line in acme] == ["acme"] * 8
    assert [json.loads(line)["eventId"] for line in recent] == [
        e.event_id for e in events if e.created_at >= cut
    ]
