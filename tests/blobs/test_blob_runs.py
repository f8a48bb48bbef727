"""Blobs by reference through the real database, the engine and the command API: a large value
is written once to the blob store, its event holds the reference under the hash chain, and every
reader that needs the value (a run's replay, the agent's history, ``GET /blobs``, a read model)
gets it back, checked against the reference."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentlane.blobs import BlobMissing, Blobs, LocalBlobStore
from agentlane.db import Database, open_database
from agentlane.folds import fold_run
from agentlane.readmodels import ReadModels, apply_events
from agentlane.records import NewEvent
from agentlane.store import EventStore
from runners.api import Outcome
from runners.engine import StepInfo, WorkflowContext, WorkflowRegistry
from tests.command_service.conftest import OPEN_LIMITS, bearer, jwt_authenticator, serve
from tests.conftest import TEST_SHARDS
from tests.engine.conftest import Harness, offline_executor

#: Small, so the tests' values cross it without megabytes.
THRESHOLD = 1024


def blobs_in(root: Path, *, cache: bool = True) -> Blobs:
    return Blobs(
        LocalBlobStore(root), threshold=THRESHOLD, cache_bytes=(64 << 20) if cache else 0
    )


@pytest.fixture
def blob_dir(tmp_path: Path) -> Path:
    return tmp_path / "blobs"


@pytest.fixture
def harness(db: Database, blob_dir: Path) -> Harness:
    return Harness(db, EventStore(db, shards=TEST_SHARDS, blobs=blobs_in(blob_dir)))


def fresh(harness: Harness, blob_dir: Path) -> Harness:
    """Another process's view: its own store and blob cache (empty), the same directory."""
    store = EventStore(harness.db, shards=TEST_SHARDS, blobs=blobs_in(blob_dir, cache=False))
    return Harness(harness.db, store)


async def _blob_rows(db: Database) -> list[tuple[Any, ...]]:
    async with db.connection() as conn:
        return await (await conn.execute(
            "SELECT e.event_type, b.sha256, b.size, b.tenant_id FROM agent_event_blobs b "
            "JOIN agent_events e USING (event_id) ORDER BY b.event_id"
        )).fetchall()


async def test_a_large_step_result_is_replayed_from_its_blob(
    harness: Harness, blob_dir: Path
) -> None:
    rows = [{"id": i, "text": f"row {i} " * 8} for i in range(200)]
    calls: list[str] = []

    async def fetch(step: StepInfo) -> list[dict[str, Any]]:
        calls.append(step.key)
        return rows

    async def wf(ctx: WorkflowContext, payload: dict[str, Any]) -> str:
        fetched = await ctx.activity("fetch", fetch)
        approval = await ctx.wait_signal("go", reason="signal")
        return f"{len(fetched)} rows, last {fetched[-1]['text'].split()[1]}; {approval.payload}"

    def executor(h: Harness) -> Any:
        registry = WorkflowRegistry()
        registry.register("agent", "1", wf)
        return h.executor(registry)

    run = await harness.start("r1", "go")
    assert await harness.advance(executor(harness), run) is Outcome.SUSPENDED
    completed = next(e for e in await harness.events(run) if e.type == "StepCompleted")
    content = json.dumps(rows, sort_keys=True, separators=(",", ":")).encode()
    assert completed.data["result"] is None
    assert completed.data["resultRef"] == {
        "sha256": hashlib.sha256(content).hexdigest(), "size": len(content)
    }
    assert await _blob_rows(harness.db) == [
        ("StepCompleted", completed.data["resultRef"]["sha256"], len(content), "acme")
    ]
    assert await harness.store.check_chain(harness.tenant, harness.session) == []
    # The log holds the reference, not the rows.
    async with harness.db.connection() as conn:
        (stored,) = await (await conn.execute(
            "SELECT octet_length(payload::text) FROM agent_events WHERE event_id = %s",
            (completed.event_id,),
        )).fetchone()
    assert stored < 300 < len(content)

    # Another runner (nothing cached) replays the step from the blob: the activity is not re-run.
    other = fresh(harness, blob_dir)
    await other.signal(run, "go", "approved")
    assert await other.advance(executor(other), run, await other.fence("runner-b")) is (
        Outcome.COMPLETED
    )
    assert calls == [f"{run.execution_id}:0"]
    assert (await other.events(run))[-1].data["answer"] == "200 rows, last 199; approved"


async def test_a_missing_blob_stops_the_run_and_writes_nothing(
    harness: Harness, blob_dir: Path
) -> None:
    async def big(step: StepInfo) -> str:
        return "z" * 5000

    async def wf(ctx: WorkflowContext, payload: dict[str, Any]) -> str:
        await ctx.activity("big", big)
        await ctx.wait_signal("go", reason="signal")
        return "done"

    registry = WorkflowRegistry()
    registry.register("agent", "1", wf)
    run = await harness.start("r1", "go")
    assert await harness.advance(harness.executor(registry), run) is Outcome.SUSPENDED
    for path in list(blob_dir.glob("*/*")):  # noqa: ASYNC240 (a test's set-up)
        path.unlink()
    other = fresh(harness, blob_dir)
    await other.signal(run, "go")
    written = len(await other.events(run))
    with pytest.raises(BlobMissing):
        await other.advance(other.executor(registry), run)
    assert len(await other.events(run)) == written


async def test_a_long_message_and_answer_live_in_blobs_and_the_agent_still_reads_them(
    harness: Harness, blob_dir: Path
) -> None:
    message = "please summarise: " + "lorem ipsum " * 400
    first = await harness.start("r1", message)
    executor = offline_executor(harness)
    assert await harness.advance(executor, first) is Outcome.COMPLETED
    accepted = (await harness.events(first))[0]
    assert accepted.data["message"] is None and accepted.data["messageRef"]["size"] > THRESHOLD
    # The next run's history (read by the agent from the store) has the message back, in full.
    other = fresh(harness, blob_dir)
    (exchange,) = await other.store.completed_exchanges(
        harness.tenant, harness.session, before_seq=10_000, limit=5
    )
    assert exchange[0] == message
    state = fold_run(await harness.events(first))
    assert state is not None and state.message == "" and state.message_ref is not None


async def test_a_large_answer_is_a_reference_in_the_read_models_and_the_run(
    harness: Harness, db: Database, owner_db: Database
) -> None:
    answer = "a long answer " * 200

    async def wf(ctx: WorkflowContext, payload: dict[str, Any]) -> str:
        return answer

    registry = WorkflowRegistry()
    registry.register("agent", "1", wf)
    run = await harness.start("r1", "go")
    assert await harness.advance(harness.executor(registry), run) is Outcome.COMPLETED
    events = await harness.events(run)
    ref = events[-1].data["answerRef"]
    state = fold_run(events)
    assert state is not None and state.to_json()["answerRef"] == ref
    assert "answer" not in state.to_json()
    async with owner_db.transaction() as conn:
        await apply_events(conn, harness.store, events)
    stored = await ReadModels(db).get_run(harness.tenant, run.execution_id)
    assert stored is not None and stored.answer_ref == ref and stored.answer is None


@pytest.fixture
async def api(database_url: str, blob_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(
        database_url, authenticator=jwt_authenticator(), limits=OPEN_LIMITS,
        blobs=blobs_in(blob_dir),
    ) as live, httpx.AsyncClient(base_url=live.base_url) as client:
        yield client


async def test_a_tenant_reads_the_blobs_of_its_own_events_only(
    api: httpx.AsyncClient, app_database_url: str, blob_dir: Path
) -> None:
    async with open_database(app_database_url, name="t", min_size=1, max_size=2) as db:
        store = EventStore(db, shards=TEST_SHARDS, blobs=blobs_in(blob_dir))
        value = {"table": [[i, i * i] for i in range(300)]}
        (event,) = await store.append_batch([NewEvent(
            "tenant-a", "s1", "ToolResult",
            {"step": 1, "callId": "c1", "name": "query", "ok": True, "result": value},
            execution_id="ex_1",
        )])
    sha = event.data["resultRef"]["sha256"]
    answer = await api.get(f"/blobs/{sha}", headers=bearer("tenant-a"))
    assert answer.status_code == 200, answer.text
    assert hashlib.sha256(answer.content).hexdigest() == sha
    assert answer.json() == value
    assert answer.headers["etag"] == f'"{sha}"' and "immutable" in answer.headers["cache-control"]
    for path, tenant in ((f"/blobs/{sha}", "tenant-b"), ("/blobs/" + "0" * 64, "tenant-a"),
                         ("/blobs/not-a-hash", "tenant-a")):
        refused = await api.get(path, headers=bearer(tenant))
        assert refused.status_code == 404, (path, tenant)
        assert refused.headers["content-type"] == "application/problem+json"
    assert (await api.get(f"/blobs/{sha}")).status_code == 401
