"""Verify's fast chain hash is the definition's (``chain_hash`` over ``event_hash_input``) for
whatever the append path can store: any JSON, floats and big numbers included."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentlane.db import open_database
from agentlane.records import NewEvent
from agentlane.replay.digest import Digester
from agentlane.replay.verify import verify
from agentlane.store import EventStore
from agentlane.store.audit import EventFilter, snapshot
from tests.strategies import json_values as _json


async def _append_and_verify(url: str, results: list[Any]) -> list[str]:
    tenant = f"t{uuid.uuid4().hex[:8]}"
    async with open_database(url, name="digest", min_size=1, max_size=2) as db:
        store = EventStore(db, shards=16)
        ex = f"ex_{tenant}"
        await store.append_batch([
            NewEvent(tenant, "s", "RunAccepted", {"runId": "r", "message": "m"}, ex),
            *(
                NewEvent(tenant, "s", "ToolResult",
                         {"step": i, "callId": "c", "name": "n", "ok": True, "result": result}, ex)
                for i, result in enumerate(results)
            ),
        ])
    found: list[str] = []
    where = EventFilter(tenant_id=tenant)
    with snapshot(url) as conn:
        verify(conn, where, report=lambda m: found.append(m.describe()))
    return found


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(results=st.lists(_json, min_size=1, max_size=3))
def test_verify_accepts_everything_the_append_path_writes(
    database_url: str, results: list[Any]
) -> None:
    assert asyncio.run(_append_and_verify(database_url, results)) == []


def test_the_fast_path_checks_itself_and_falls_back() -> None:
    """If the definition ever changes (a new field in the Event JSON), the first row shows it."""
    import json
    from datetime import UTC, datetime

    from agentlane.hashchain import GENESIS_HASH, chain_hash
    from agentlane.replay.digest import fast_digest
    from agentlane.replay.rows import EventRow
    from agentlane.store import event_hash_input

    data = {"text": "x", "index": 0}
    row = EventRow(7, 1, "t", "s", None, "Token", data, datetime(2026, 1, 1, tzinfo=UTC))
    defined = chain_hash(GENESIS_HASH, event_hash_input(row.stored()))
    digester = Digester()
    for _ in range(3):
        assert digester.verify(GENESIS_HASH, row, defined, json.dumps(data)) == (True, row)
    assert digester.fast

    class Drifted(Digester):
        def timestamp(self, moment: datetime) -> str:
            return "not the definition's spelling"

    drifted = Drifted()
    assert drifted.verify(GENESIS_HASH, row, defined, json.dumps(data)) == (True, row)
    assert not drifted.fast
    # Rows hashed the way the fast path spells them, which the definition no longer gives: the
    # definition rejects every one, the first included.
    old = fast_digest(GENESIS_HASH, row, "not the definition's spelling")
    assert old is not None
    drifted = Drifted()
    for _ in range(3):
        assert drifted.verify(GENESIS_HASH, row, old, json.dumps(data))[0] is False
    assert not drifted.fast
