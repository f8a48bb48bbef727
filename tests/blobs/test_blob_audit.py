"""The auditor's and the operator's view of blobs, through the real CLI processes: ``replay
verify`` proves each referenced blob (missing or altered: a mismatch at each event naming it),
``replay export --inline-blobs`` writes the values, and ``agentlane blobs gc`` deletes only what
no event references."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from agentlane.blobs import Blobs, LocalBlobStore
from agentlane.commands import Commands
from agentlane.db import Database
from agentlane.records import NewEvent, StoredEvent
from agentlane.run_index import RunIndex
from agentlane.store import EventStore
from tests.conftest import TEST_SHARDS
from tests.replay.conftest import replay

RESULT = {"rows": [{"n": i, "square": i * i} for i in range(400)]}


async def _write(db: Database, blob_dir: Path) -> list[StoredEvent]:
    """Two runs (sessions s0, s1) whose tool returned the same large result: one blob."""
    store = EventStore(db, shards=TEST_SHARDS, blobs=Blobs(LocalBlobStore(blob_dir),
                                                           threshold=1024))
    commands = Commands(store, RunIndex(db))
    results = []
    for session in ("s0", "s1"):
        ex = (await commands.start_run(
            tenant_id="acme", session_id=session, run_id=f"r-{session}", message="count"
        )).execution_id
        call = {"step": 1, "callId": "c1", "name": "query"}
        written = await store.append_batch([
            NewEvent("acme", session, "RunStarted", {"workflow": "agent", "version": "1"}, ex),
            NewEvent("acme", session, "ToolCall", call, ex),
            NewEvent("acme", session, "ToolResult", {**call, "ok": True, "result": RESULT}, ex),
            NewEvent("acme", session, "Completed", {"answer": "400 rows"}, ex),
        ])
        results += [event for event in written if event.type == "ToolResult"]
    return results


def _env(blob_dir: Path) -> dict[str, str]:
    return {"AGENTLANE_BLOB_STORE": str(blob_dir)}


async def test_verify_proves_the_blobs_and_names_each_event_of_a_bad_one(
    db: Database, database_url: str, tmp_path: Path
) -> None:
    blob_dir = tmp_path / "blobs"
    written = await _write(db, blob_dir)
    sha = written[0].data["resultRef"]["sha256"]

    ok = replay(database_url, "verify", extra_env=_env(blob_dir))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "blobs: 1 checked" in ok.stdout and "(2 references)" in ok.stdout

    path = blob_dir / sha[:2] / sha
    path.write_bytes(path.read_bytes().replace(b'"square":4', b'"square":5'))
    altered = replay(database_url, "verify", extra_env=_env(blob_dir))
    assert altered.returncode == 1
    mismatches = [line for line in altered.stdout.splitlines() if line.startswith("MISMATCH")]
    assert len(mismatches) == 2 and all(f"resultRef {sha}: its bytes hash to" in line
                                        for line in mismatches), altered.stdout
    assert {"acme/s0", "acme/s1"} == {line.split()[1] for line in mismatches}

    path.unlink()
    missing = replay(database_url, "verify", "--json", extra_env=_env(blob_dir))
    lines = [json.loads(line) for line in missing.stdout.splitlines()]
    assert missing.returncode == 1 and lines[-1]["mismatches"] == 2
    assert all("the blob is not in" in line["what"] for line in lines[:-1])


async def test_export_writes_references_or_inlines_the_values(
    db: Database, database_url: str, tmp_path: Path
) -> None:
    blob_dir = tmp_path / "blobs"
    await _write(db, blob_dir)
    plain = replay(database_url, "export", "--session", "s1", extra_env=_env(blob_dir))
    (event,) = [json.loads(line) for line in plain.stdout.splitlines()
                if '"ToolResult"' in line]
    assert event["data"]["result"] is None and "resultRef" in event["data"]

    inlined = replay(database_url, "export", "--session", "s1", "--inline-blobs",
                     extra_env=_env(blob_dir))
    assert inlined.returncode == 0, inlined.stderr
    (event,) = [json.loads(line) for line in inlined.stdout.splitlines()
                if '"ToolResult"' in line]
    assert event["data"]["result"] == RESULT and "resultRef" not in event["data"]

    no_store = replay(database_url, "export", "--inline-blobs")
    assert no_store.returncode == 1 and "AGENTLANE_BLOB_STORE" in no_store.stderr
    assert len(no_store.stderr.splitlines()) == 1


async def test_gc_deletes_old_blobs_no_event_references(
    db: Database, database_url: str, tmp_path: Path
) -> None:
    blob_dir = tmp_path / "blobs"
    written = await _write(db, blob_dir)
    kept = written[0].data["resultRef"]["sha256"]
    # Two blobs whose events never committed: one old, one just written.
    store = LocalBlobStore(blob_dir)
    old, recent = await Blobs(store, threshold=1024).offload(
        [NewEvent("acme", "sx", "Completed", {"answer": text * 2000}) for text in ("a", "b")]
    )
    old_sha, recent_sha = (event.data["answerRef"]["sha256"] for event in (old, recent))
    two_days_ago = time.time() - 2 * 86400
    for sha in (old_sha, kept):
        os.utime(blob_dir / sha[:2] / sha, (two_days_ago, two_days_ago))

    def gc(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "agentlane.cli", "blobs", "gc", *args],
            env={"PATH": os.environ["PATH"], "DATABASE_URL": database_url,
                 "AGENTLANE_SHARDS": str(TEST_SHARDS), **_env(blob_dir)},
            capture_output=True, text=True, timeout=60, check=False,
        )

    dry = gc("--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout == f"would delete {old_sha}\n"
    assert (blob_dir / old_sha[:2] / old_sha).exists()
    done = gc()
    assert done.stdout == f"deleted {old_sha}\n"
    assert "3 blobs, 1 referenced, 1 within the grace period, deleted 1" in done.stderr
    remaining = {path.name for path in blob_dir.glob("*/*")}
    assert remaining == {kept, recent_sha}
    assert gc("--grace-hours", "0").returncode == 1
