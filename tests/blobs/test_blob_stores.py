"""The blob stores themselves: a local directory and Cloud Storage (Google's storage emulator),
the values that go to them and come back, and the collector that deletes what nothing references.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentlane.blobs import (
    BlobCorrupt,
    BlobMissing,
    Blobs,
    BlobStore,
    GcsBlobStore,
    LocalBlobStore,
    encode,
    open_blob_store,
    refs_in,
)
from agentlane.blobs.retention import collect
from agentlane.errors import AgentlaneError
from agentlane.events import validate_data
from agentlane.records import NewEvent, StoredEvent

THRESHOLD = 256
#: What an event may hold (jsonb keeps no NUL, UTF-8 no lone surrogate).
text = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=200)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | text,
    lambda inner: st.lists(inner, max_size=8) | st.dictionaries(text, inner,
                                                                max_size=8),
    max_leaves=60,
)
#: Per event type with a blob field, data around that field (the strategy picks the value).
_DATA = {
    "ToolResult": lambda v: {"step": 1, "callId": "c", "name": "t", "ok": True, "result": v},
    "StepCompleted": lambda v: {"step": 2, "name": "fetch", "result": v},
    "SignalReceived": lambda v: {"name": "approve", "payload": v},
}
_TEXT_DATA = {
    "RunAccepted": lambda v: {"runId": "r1", "message": v},
    "Completed": lambda v: {"answer": v},
}
events = st.one_of(
    st.sampled_from(sorted(_DATA)).flatmap(
        lambda kind: json_values.map(lambda v, k=kind: (k, _DATA[k](v)))
    ),
    st.sampled_from(sorted(_TEXT_DATA)).flatmap(
        lambda kind: st.lists(text, max_size=3).map("".join).map(
            lambda v, k=kind: (k, _TEXT_DATA[k](v))
        )
    ),
)


def _stored(event: NewEvent) -> StoredEvent:
    return StoredEvent(1, 1, event.tenant_id, event.session_id, None, event.type, event.data,
                       datetime(2026, 1, 1, tzinfo=UTC))


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(event=events)
def test_a_large_value_goes_to_its_blob_and_comes_back_the_same(
    event: tuple[str, dict[str, Any]], tmp_path: Path
) -> None:
    kind, data = event
    blobs = Blobs(LocalBlobStore(tmp_path / "blobs"), threshold=THRESHOLD, cache_bytes=0)
    (offloaded,) = asyncio.run(blobs.offload([NewEvent("t", "s", kind, data)]))
    expected = validate_data(kind, data)
    refs = list(refs_in(kind, offloaded.data))
    (field,) = [f for f in ("result", "message", "payload", "answer") if f in expected]
    # Exactly the values whose JSON exceeds the threshold go; the reference names their bytes.
    assert bool(refs) == (len(encode(expected[field])) > THRESHOLD)
    if refs:
        (_, ref), content = refs[0], encode(expected[field])
        assert ref.sha256 == hashlib.sha256(content).hexdigest() and ref.size == len(content)
        assert offloaded.data[field] is None
        assert validate_data(kind, offloaded.data) == offloaded.data  # a valid event as stored
    (back,) = asyncio.run(blobs.resolve([_stored(offloaded)]))
    assert validate_data(kind, back.data) == expected


def test_a_value_whose_blob_was_altered_is_refused(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    blobs = Blobs(store, threshold=1024, cache_bytes=0)
    (event,) = asyncio.run(blobs.offload([NewEvent("t", "s", "Completed", {"answer": "x" * 5000})]))
    (_, ref), = refs_in("Completed", event.data)
    path = tmp_path / ref.sha256[:2] / ref.sha256
    path.write_bytes(path.read_bytes().replace(b"xxx", b"xyx", 1))
    with pytest.raises(BlobCorrupt, match=ref.sha256):
        asyncio.run(blobs.resolve([_stored(event)]))
    path.unlink()
    with pytest.raises(BlobMissing):
        asyncio.run(blobs.resolve([_stored(event)]))


def test_the_same_value_is_stored_once(tmp_path: Path) -> None:
    blobs = Blobs(LocalBlobStore(tmp_path), threshold=1024)
    value = {"rows": list(range(2000))}
    made = asyncio.run(blobs.offload([
        NewEvent("t", f"s{i}", "ToolResult",
                 {"step": i, "callId": "c", "name": "q", "ok": True, "result": value})
        for i in range(3)
    ]))
    assert len({e.data["resultRef"]["sha256"] for e in made}) == 1
    assert len(list(tmp_path.glob("*/*"))) == 1


def test_a_store_is_named_by_url(tmp_path: Path) -> None:
    assert isinstance(open_blob_store(str(tmp_path)), LocalBlobStore)
    assert isinstance(open_blob_store(f"file://{tmp_path}"), LocalBlobStore)
    gcs = open_blob_store("gs://bucket/some/prefix", emulator="127.0.0.1:1")
    assert isinstance(gcs, GcsBlobStore) and gcs.url == "gs://bucket/some/prefix"
    for bad in ("s3://bucket", "gs://"):
        with pytest.raises(AgentlaneError):
            open_blob_store(bad, emulator="127.0.0.1:1")


# --- retention -----------------------------------------------------------------------------------


def _age(store: LocalBlobStore, sha: str, hours: float) -> None:
    when = (datetime.now(UTC) - timedelta(hours=hours)).timestamp()
    os.utime(store.root / sha[:2] / sha, (when, when))


async def _put(store: BlobStore, text: str) -> str:
    content = text.encode()
    sha = hashlib.sha256(content).hexdigest()
    await store.put(sha, content)
    return sha


async def test_the_collector_deletes_only_old_blobs_nothing_references(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    referenced, orphan, fresh, reused = [
        await _put(store, name) for name in ("referenced", "orphan", "fresh", "reused")
    ]
    for sha in (referenced, orphan, reused):
        _age(store, sha, 48)
    # A writer reuses an old orphan: putting it again touches it, so it is young again.
    await _put(store, "reused")
    outcome = await collect(store, {referenced}, now=datetime.now(UTC))
    assert outcome.deleted == [orphan]
    assert (outcome.listed, outcome.referenced, outcome.recent) == (4, 1, 2)
    assert {b.sha256 async for b in store.list()} == {referenced, fresh, reused}


async def test_a_blob_touched_after_the_listing_is_spared(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    sha = await _put(store, "orphan")
    _age(store, sha, 48)
    (listed,) = [blob async for blob in store.list()]
    await _put(store, "orphan")  # a writer reuses it between the listing and the delete
    assert await store.delete(listed) is False
    assert (store.root / sha[:2] / sha).exists()


# --- Cloud Storage, through Google's storage emulator --------------------------------------------


@pytest.fixture
def emulator() -> Iterator[str]:
    from gcp_storage_emulator.server import create_server

    from agentlane.cli.embedded_pg import free_port

    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True, default_bucket="blobs")
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


async def test_cloud_storage_keeps_blobs_by_hash(emulator: str) -> None:
    store = GcsBlobStore("blobs", "prod", emulator=emulator)
    other = GcsBlobStore("blobs", "staging", emulator=emulator)
    sha = await _put(store, '"a long answer"')
    await _put(store, '"a long answer"')  # exists: touched, not an error
    await _put(other, '"staging only"')
    assert await store.get(sha) == b'"a long answer"'
    listed = [blob async for blob in store.list()]
    assert [blob.sha256 for blob in listed] == [sha]
    assert listed[0].written_at > datetime.now(UTC) - timedelta(minutes=5)
    with pytest.raises(BlobMissing):
        await other.get(sha)
    blobs = Blobs(store, threshold=1024, cache_bytes=0)
    (event,) = await blobs.offload([NewEvent("t", "s", "Completed", {"answer": "y" * 4000})])
    (back,) = await blobs.resolve([_stored(event)])
    assert back.data["answer"] == "y" * 4000
    outcome = await collect(store, set(), now=datetime.now(UTC) + timedelta(days=2))
    assert sorted(outcome.deleted) == sorted({sha, event.data["answerRef"]["sha256"]})
    assert [blob async for blob in store.list()] == []
    assert [blob.sha256 async for blob in other.list()] != []
