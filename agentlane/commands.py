"""The commands: start a run, cancel it, signal it. One code path for HTTP, WebSocket and tests.

Each command appends its events and updates the runners' work index (``run_index``) in one
transaction, then wakes the owning shard with NOTIFY (a hint; owners also poll).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any, Literal

import psycopg
from psycopg.rows import tuple_row

from agentlane.db import translate_errors
from agentlane.errors import CommandError, RunConflict, RunFinished, RunNotFound
from agentlane.events import TERMINAL_TYPES
from agentlane.records import NewEvent, StoredEvent
from agentlane.sharding import shard_for
from agentlane.store import EventStore

WORK_CHANNEL = "agentlane_work"
OnConflict = Literal["enqueue", "reject", "interrupt"]
#: ``runId``, ``sessionId`` (and ids in paths): 1-128 characters of ``[A-Za-z0-9._:-]``; the one
#: definition the HTTP models, the OpenAPI document and the gateway use too.
IDENTIFIER_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"
_IDENTIFIER = re.compile(r"[A-Za-z0-9._:-]{1,128}")

_STATUS_OF_TERMINAL = {"Completed": "completed", "Failed": "failed", "Cancelled": "cancelled"}


@dataclass(frozen=True, slots=True)
class RunAccepted:
    """The answer to a start: the run's identity and whether this call created it."""

    execution_id: str
    session_id: str
    run_id: str
    event_id: int
    status: str
    created: bool


def is_identifier(value: str) -> bool:
    """True for 1-128 characters of ``[A-Za-z0-9._:-]``."""
    return _IDENTIFIER.fullmatch(value) is not None  # not match(): "$" lets a trailing "\n" in


def check_identifier(field: str, value: str) -> None:
    """``runId`` and ``sessionId`` are 1-128 characters of ``[A-Za-z0-9._:-]``."""
    if not is_identifier(value):
        raise CommandError(f"{field}: must be 1-128 characters of [A-Za-z0-9._:-]")


def run_idempotency_key(run_id: str) -> str:
    return f"run:{run_id}"


async def start_run(
    store: EventStore,
    *,
    tenant_id: str,
    session_id: str,
    run_id: str,
    message: str,
    on_conflict: OnConflict = "enqueue",
    budget: dict[str, int] | None = None,
) -> RunAccepted:
    """Accept a run once per ``(tenant, runId)``: a retry or a racing duplicate gets the same
    execution back and writes nothing."""
    check_identifier("sessionId", session_id)
    check_identifier("runId", run_id)
    execution_id = f"ex_{uuid.uuid4().hex}"
    shard = shard_for(tenant_id, session_id, store.shards)
    data: dict[str, Any] = {"runId": run_id, "message": message, "onConflict": on_conflict}
    if budget:
        data["budget"] = budget

    async def index_run(conn: psycopg.AsyncConnection[Any], written: list[StoredEvent]) -> None:
        accepted = written[0]
        active = await _active_runs(conn, tenant_id, session_id)
        if active and on_conflict == "reject":
            raise RunConflict(session_id, active[0])
        if active and on_conflict == "interrupt":
            await store.append_in_transaction(
                conn,
                [
                    NewEvent(
                        tenant_id,
                        session_id,
                        "CancelRequested",
                        {"reason": f"interrupted by run {run_id}"},
                        execution_id=other,
                    )
                    for other in active
                ],
            )
            await conn.execute(
                "UPDATE run_index SET wake_at = now(), updated_at = now() "
                "WHERE tenant_id = %s AND execution_id = ANY(%s)",
                (tenant_id, active),
            )
        await conn.execute(
            "INSERT INTO run_index (execution_id, tenant_id, session_id, run_id, shard_id, "
            "accepted_seq, status, wake_at) VALUES (%s, %s, %s, %s, %s, %s, 'queued', now())",
            (execution_id, tenant_id, session_id, run_id, shard, accepted.seq),
        )
        await _wake_shard(conn, shard)

    result = await store.append(
        NewEvent(
            tenant_id,
            session_id,
            "RunAccepted",
            data,
            execution_id=execution_id,
            idempotency_key=run_idempotency_key(run_id),
        ),
        in_transaction=index_run,
    )
    event = result.event
    status = "queued"
    if not result.created:
        status = await run_status(store, tenant_id, event.execution_id or "")
    return RunAccepted(
        execution_id=event.execution_id or "",
        session_id=event.session_id,
        run_id=run_id,
        event_id=event.event_id,
        status=status,
        created=result.created,
    )


async def cancel_run(
    store: EventStore, *, tenant_id: str, execution_id: str, reason: str | None = None
) -> StoredEvent | None:
    """Ask a run to stop. Returns the CancelRequested event, or None if the run already ended."""
    return await _command_run(
        store,
        tenant_id,
        execution_id,
        "CancelRequested",
        {"reason": reason} if reason else {},
        finished_ok=True,
    )


async def signal_run(
    store: EventStore,
    *,
    tenant_id: str,
    execution_id: str,
    name: str,
    payload: Any = None,
) -> StoredEvent:
    """Deliver a named signal (an approval, a budget raise) to a run that has not ended."""
    if not name or len(name) > 128:
        raise CommandError("name: must be 1-128 characters")
    event = await _command_run(
        store,
        tenant_id,
        execution_id,
        "SignalReceived",
        {"name": name, "payload": payload},
        finished_ok=False,
    )
    assert event is not None
    return event


async def run_status(store: EventStore, tenant_id: str, execution_id: str) -> str:
    """Status from the work index, or from the journal once the run has ended."""
    with translate_errors():
        async with store.pool.connection() as conn:
            row = await (
                await conn.execute(
                    "SELECT status FROM run_index WHERE tenant_id = %s AND execution_id = %s",
                    (tenant_id, execution_id),
                )
            ).fetchone()
    if row is not None:
        return str(row[0])
    events = await store.read_execution(tenant_id, execution_id)
    if not events:
        raise RunNotFound(execution_id)
    for event in reversed(events):
        if event.type in TERMINAL_TYPES:
            return _STATUS_OF_TERMINAL[event.type]
    return "queued"


async def _command_run(
    store: EventStore,
    tenant_id: str,
    execution_id: str,
    event_type: str,
    data: dict[str, Any],
    *,
    finished_ok: bool,
) -> StoredEvent | None:
    with translate_errors():
        async with store.pool.connection() as conn:
            cursor = conn.cursor(row_factory=tuple_row)
            await cursor.execute(
                "SELECT session_id, shard_id FROM run_index "
                "WHERE tenant_id = %s AND execution_id = %s",
                (tenant_id, execution_id),
            )
            row = await cursor.fetchone()
    if row is None:
        status = await run_status(store, tenant_id, execution_id)  # raises RunNotFound
        if finished_ok:
            return None
        raise RunFinished(execution_id, status)
    session_id, shard = row

    async def wake(conn: psycopg.AsyncConnection[Any], written: list[StoredEvent]) -> None:
        updated = await conn.execute(
            "UPDATE run_index SET wake_at = now(), updated_at = now() "
            "WHERE tenant_id = %s AND execution_id = %s",
            (tenant_id, execution_id),
        )
        if updated.rowcount == 0:
            # The run ended between our read and this transaction: write nothing.
            raise _RunEndedMeanwhile()
        await _wake_shard(conn, shard)

    try:
        result = await store.append(
            NewEvent(tenant_id, session_id, event_type, data, execution_id=execution_id),
            in_transaction=wake,
        )
    except _RunEndedMeanwhile:
        if finished_ok:
            return None
        raise RunFinished(execution_id, await run_status(store, tenant_id, execution_id)) from None
    return result.event


class _RunEndedMeanwhile(Exception):
    pass


async def _active_runs(
    conn: psycopg.AsyncConnection[Any], tenant_id: str, session_id: str
) -> list[str]:
    cursor = conn.cursor(row_factory=tuple_row)
    await cursor.execute(
        "SELECT execution_id FROM run_index WHERE tenant_id = %s AND session_id = %s "
        "ORDER BY accepted_seq",
        (tenant_id, session_id),
    )
    return [row[0] for row in await cursor.fetchall()]


async def _wake_shard(conn: psycopg.AsyncConnection[Any], shard: int) -> None:
    await conn.execute("SELECT pg_notify(%s, %s)", (WORK_CHANNEL, str(shard)))
