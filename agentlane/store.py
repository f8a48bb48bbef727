"""The event store: append-only ``agent_events`` on Postgres, the only source of truth.

Append takes the stream head's row lock (so ``seq`` has no gaps and ``event_id`` grows with it),
extends the hash chain and inserts, all in one transaction; an optional fence re-checks the
writer's shard lease in that same transaction. Reads filter by tenant, always.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import tuple_row
from psycopg_pool import AsyncConnectionPool

from agentlane.db import Backoff, translate_errors
from agentlane.errors import DuplicateEvent, FencedOut, InvalidEvent
from agentlane.events import format_timestamp, validate_data
from agentlane.hashchain import GENESIS_HASH, ChainBreak, ChainChecker, ChainRow, chain_hash
from agentlane.records import Checkpoint, Fence, NewEvent, StoredEvent, TailedEvent
from agentlane.sharding import shard_for

logger = logging.getLogger(__name__)

WAKEUP_CHANNEL = "agentlane_events"

#: Runs inside the append's transaction, after the insert, only when something was written.
TransactionHook = Callable[[psycopg.AsyncConnection[Any], list[StoredEvent]], Awaitable[None]]

_EVENT_COLUMNS = (
    "event_id, seq, tenant_id, session_id, execution_id, event_type, payload, created_at"
)

_LOCK_HEAD = """
INSERT INTO agent_stream_heads AS h (tenant_id, session_id, last_seq, last_hash)
VALUES (%(tenant)s, %(session)s, %(count)s, %(genesis)s)
ON CONFLICT (tenant_id, session_id)
    DO UPDATE SET last_seq = h.last_seq + %(count)s, updated_at = now()
RETURNING h.last_seq - %(count)s + 1, h.last_hash, now()
"""

# The lease row is read FOR SHARE: a takeover (an UPDATE of that row) waits until this append has
# committed or rolled back, so no write can slip in after the lease moved.
_LOCK_HEAD_FENCED = """
WITH fence AS (
    SELECT 1 FROM cluster_shards
    WHERE shard_id = %(shard)s AND runner_id = %(runner)s AND lease_token = %(token)s
      AND lease_expires_at > now()
    FOR SHARE
)
INSERT INTO agent_stream_heads AS h (tenant_id, session_id, last_seq, last_hash)
SELECT %(tenant)s, %(session)s, %(count)s, %(genesis)s FROM fence
ON CONFLICT (tenant_id, session_id)
    DO UPDATE SET last_seq = h.last_seq + %(count)s, updated_at = now()
RETURNING h.last_seq - %(count)s + 1, h.last_hash, now()
"""

_INSERT = """
WITH ins AS (
    INSERT INTO agent_events (tenant_id, session_id, seq, execution_id, event_type, payload,
                              created_at, idempotency_key, prev_hash, hash)
    SELECT %(tenant)s, %(session)s, u.seq, u.execution_id, u.event_type, u.payload::jsonb,
           %(created_at)s, u.idempotency_key, u.prev_hash, u.hash
    FROM unnest(%(seqs)b::bigint[], %(executions)b::text[], %(types)b::text[],
                %(payloads)b::text[], %(keys)b::text[], %(prevs)b::bytea[], %(hashes)b::bytea[])
         AS u(seq, execution_id, event_type, payload, idempotency_key, prev_hash, hash)
    ORDER BY u.seq
    ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING event_id, seq
), head AS (
    UPDATE agent_stream_heads SET last_hash = %(last_hash)s
    WHERE tenant_id = %(tenant)s AND session_id = %(session)s
)
SELECT event_id, seq FROM ins ORDER BY seq
"""


@dataclass(frozen=True, slots=True)
class AppendResult:
    """The stored event, and whether this call wrote it (False: its idempotency key existed)."""

    event: StoredEvent
    created: bool


class _KeyTaken(Exception):
    """Internal: an idempotency key was already stored; the transaction must roll back."""

    def __init__(self, tenant_id: str, keys: list[str]) -> None:
        self.tenant_id = tenant_id
        self.keys = keys


def event_hash_input(event: StoredEvent) -> dict[str, Any]:
    """What the hash chain covers: the Event JSON without ``eventId`` (assigned by a sequence at
    insert; its order is checked separately against ``seq``)."""
    return hash_body(event, format_timestamp(event.created_at))


def hash_body(event: StoredEvent, created_at: str) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "tenantId": event.tenant_id,
        "sessionId": event.session_id,
        "executionId": event.execution_id,
        "type": event.type,
        "data": event.data,
        "createdAt": created_at,
    }


def row_to_event(row: Sequence[Any]) -> StoredEvent:
    return StoredEvent(
        event_id=row[0],
        seq=row[1],
        tenant_id=row[2],
        session_id=row[3],
        execution_id=row[4],
        type=row[5],
        data=row[6],
        created_at=row[7],
    )


class EventStore:
    """Async access to ``agent_events``. Owns no connections: it borrows from the given pool."""

    def __init__(self, pool: AsyncConnectionPool, *, shards: int) -> None:
        self.pool = pool
        self.shards = shards

    # --- append -------------------------------------------------------------------------------

    async def append(
        self,
        event: NewEvent,
        *,
        fence: Fence | None = None,
        in_transaction: TransactionHook | None = None,
    ) -> AppendResult:
        """Append one event. With an idempotency key that is already stored, write nothing and
        return the stored event (``created=False``) — also when racing writers use the same key."""
        if event.idempotency_key is not None:
            existing = await self.find_by_idempotency_key(event.tenant_id, event.idempotency_key)
            if existing is not None:
                return AppendResult(existing, created=False)
        try:
            stored = await self._write([event], fence=fence, in_transaction=in_transaction)
        except _KeyTaken as taken:
            assert event.idempotency_key is not None
            existing = await self.find_by_idempotency_key(taken.tenant_id, event.idempotency_key)
            assert existing is not None, "a conflicting key must be visible after its commit"
            return AppendResult(existing, created=False)
        return AppendResult(stored[0], created=True)

    async def append_batch(
        self,
        events: Sequence[NewEvent],
        *,
        fence: Fence | None = None,
        in_transaction: TransactionHook | None = None,
    ) -> list[StoredEvent]:
        """Append events (one or more sessions) atomically, in the order given per session.

        Raises DuplicateEvent, writing nothing, when an idempotency key is already stored.
        """
        if not events:
            return []
        try:
            return await self._write(events, fence=fence, in_transaction=in_transaction)
        except _KeyTaken as taken:
            raise DuplicateEvent(tenant_id=taken.tenant_id, idempotency_key=taken.keys[0]) from None

    async def _write(
        self,
        events: Sequence[NewEvent],
        *,
        fence: Fence | None,
        in_transaction: TransactionHook | None,
    ) -> list[StoredEvent]:
        prepared = [(event, validate_data(event.type, event.data)) for event in events]
        for event, _ in prepared:
            _check_stream_names(event)
            if fence is not None:
                shard = shard_for(event.tenant_id, event.session_id, self.shards)
                if shard != fence.shard_id:
                    raise FencedOut(
                        shard_id=shard, runner_id=fence.runner_id, lease_token=fence.lease_token
                    )
        # Heads are locked in one global order, so two batches never wait on each other in a cycle.
        by_stream: dict[tuple[str, str], list[tuple[NewEvent, dict[str, Any]]]] = {}
        for item in prepared:
            by_stream.setdefault((item[0].tenant_id, item[0].session_id), []).append(item)
        grouped = sorted(by_stream.items())
        with translate_errors():
            async with self.pool.connection() as conn, conn.transaction():
                written: list[StoredEvent] = []
                for (tenant, session), items in grouped:
                    written.extend(await self._write_stream(conn, tenant, session, items, fence))
                if in_transaction is not None:
                    await in_transaction(conn, written)
        return written

    async def append_in_transaction(
        self,
        conn: psycopg.AsyncConnection[Any],
        events: Sequence[NewEvent],
    ) -> list[StoredEvent]:
        """Append to streams inside a caller's open transaction (a TransactionHook), e.g. a command
        that must write several events atomically. Idempotency keys conflict as DuplicateEvent."""
        written: list[StoredEvent] = []
        by_stream: dict[tuple[str, str], list[tuple[NewEvent, dict[str, Any]]]] = {}
        for event in events:
            _check_stream_names(event)
            item = (event, validate_data(event.type, event.data))
            by_stream.setdefault((event.tenant_id, event.session_id), []).append(item)
        with translate_errors():
            for (tenant, session), items in sorted(by_stream.items()):
                try:
                    written.extend(await self._write_stream(conn, tenant, session, items, None))
                except _KeyTaken as taken:
                    raise DuplicateEvent(
                        tenant_id=taken.tenant_id, idempotency_key=taken.keys[0]
                    ) from None
        return written

    async def _write_stream(
        self,
        conn: psycopg.AsyncConnection[Any],
        tenant: str,
        session: str,
        items: list[tuple[NewEvent, dict[str, Any]]],
        fence: Fence | None,
    ) -> list[StoredEvent]:
        params: dict[str, Any] = {
            "tenant": tenant,
            "session": session,
            "count": len(items),
            "genesis": GENESIS_HASH,
        }
        if fence is not None:
            params |= {
                "shard": fence.shard_id,
                "runner": fence.runner_id,
                "token": fence.lease_token,
            }
        cursor = conn.cursor(row_factory=tuple_row)
        await cursor.execute(_LOCK_HEAD_FENCED if fence is not None else _LOCK_HEAD, params)
        head = await cursor.fetchone()
        if head is None:
            assert fence is not None
            raise FencedOut(
                shard_id=fence.shard_id, runner_id=fence.runner_id, lease_token=fence.lease_token
            )
        first_seq, prev_hash, created_at = head
        created_text = format_timestamp(created_at)
        pending: list[StoredEvent] = []
        prevs: list[bytes] = []
        hashes: list[bytes] = []
        for offset, (event, data) in enumerate(items):
            stored = StoredEvent(
                event_id=0,
                seq=first_seq + offset,
                tenant_id=tenant,
                session_id=session,
                execution_id=event.execution_id,
                type=event.type,
                data=data,
                created_at=created_at,
            )
            digest = chain_hash(prev_hash, hash_body(stored, created_text))
            prevs.append(prev_hash)
            hashes.append(digest)
            pending.append(stored)
            prev_hash = digest
        await cursor.execute(
            _INSERT,
            {
                "tenant": tenant,
                "session": session,
                "created_at": created_at,
                "seqs": [e.seq for e in pending],
                "executions": [e.execution_id for e in pending],
                "types": [e.type for e in pending],
                "payloads": [json.dumps(e.data, ensure_ascii=False) for e in pending],
                "keys": [event.idempotency_key for event, _ in items],
                "prevs": prevs,
                "hashes": hashes,
                "last_hash": prev_hash,
            },
        )
        ids = {seq: event_id for event_id, seq in await cursor.fetchall()}
        if len(ids) != len(pending):
            taken = [
                event.idempotency_key
                for (event, _), stored in zip(items, pending, strict=True)
                if stored.seq not in ids and event.idempotency_key is not None
            ]
            raise _KeyTaken(tenant, taken)
        return [
            StoredEvent(
                event_id=ids[e.seq],
                seq=e.seq,
                tenant_id=e.tenant_id,
                session_id=e.session_id,
                execution_id=e.execution_id,
                type=e.type,
                data=e.data,
                created_at=e.created_at,
            )
            for e in pending
        ]

    # --- reads --------------------------------------------------------------------------------

    async def find_by_idempotency_key(self, tenant_id: str, key: str) -> StoredEvent | None:
        rows = await self._fetch(
            f"SELECT {_EVENT_COLUMNS} FROM agent_events "
            "WHERE tenant_id = %s AND idempotency_key = %s",
            (tenant_id, key),
        )
        return rows[0] if rows else None

    async def read_session(
        self, tenant_id: str, session_id: str, *, after_event_id: int = 0, limit: int = 1000
    ) -> list[StoredEvent]:
        """A session's events with ``eventId > after_event_id``, in ``seq`` order."""
        return await self._fetch(
            f"SELECT {_EVENT_COLUMNS} FROM agent_events "
            "WHERE tenant_id = %s AND session_id = %s AND event_id > %s "
            "ORDER BY event_id LIMIT %s",
            (tenant_id, session_id, after_event_id, limit),
        )

    async def read_execution(self, tenant_id: str, execution_id: str) -> list[StoredEvent]:
        """One run's events in ``seq`` order (empty for another tenant's run)."""
        return await self._fetch(
            f"SELECT {_EVENT_COLUMNS} FROM agent_events "
            "WHERE execution_id = %s AND tenant_id = %s ORDER BY seq",
            (execution_id, tenant_id),
        )

    async def read_tail(self, after: Checkpoint, *, limit: int = 1000) -> list[TailedEvent]:
        """Events of every stream after ``after``, gap-safe.

        Only transactions older than the oldest one still running are read (in the same
        statement), so an event that commits late can never appear behind a returned position.
        """
        with translate_errors():
            async with self.pool.connection() as conn:
                cursor = conn.cursor(row_factory=tuple_row)
                await cursor.execute(
                    # The text copy of tx_id gets its own name: a bare "ORDER BY tx_id" would
                    # otherwise sort by the output column, as text ('999' > '1000').
                    f"SELECT {_EVENT_COLUMNS}, tx_id::text AS tx_text FROM agent_events e "
                    "WHERE (e.tx_id, e.event_id) > (%s::text::xid8, %s) "
                    "AND e.tx_id < pg_snapshot_xmin(pg_current_snapshot()) "
                    "ORDER BY e.tx_id, e.event_id LIMIT %s",
                    (str(after.tx_id), after.event_id, limit),
                )
                rows = await cursor.fetchall()
        return [TailedEvent(row_to_event(row), Checkpoint(int(row[8]), row[0])) for row in rows]

    async def live_checkpoint(self) -> Checkpoint:
        """A checkpoint for a reader that wants only what commits from now on.

        It may repeat a few recent events (consumers dedupe by ``eventId``) but never skips one.
        """
        with translate_errors():
            async with self.pool.connection() as conn:
                cursor = conn.cursor(row_factory=tuple_row)
                await cursor.execute(
                    "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint - 1"
                )
                row = await cursor.fetchone()
        assert row is not None
        return Checkpoint(int(row[0]), 2**63 - 1)

    async def transaction_horizon_age_s(self) -> float:
        """Seconds since the oldest running transaction began: how far gap-safe readers lag."""
        with translate_errors():
            async with self.pool.connection() as conn:
                cursor = conn.cursor(row_factory=tuple_row)
                await cursor.execute(
                    "SELECT coalesce(extract(epoch FROM now() - min(xact_start)), 0) "
                    "FROM pg_stat_activity WHERE backend_xid IS NOT NULL"
                )
                row = await cursor.fetchone()
        return float(row[0]) if row else 0.0

    async def check_chain(self, tenant_id: str, session_id: str) -> list[ChainBreak]:
        """Re-check one stream's hash chain, seq contiguity and head: every place it breaks."""
        checker = ChainChecker()
        problems: list[ChainBreak] = []
        with translate_errors():
            async with self.pool.connection() as conn:
                cursor = conn.cursor(row_factory=tuple_row)
                await cursor.execute(
                    f"SELECT {_EVENT_COLUMNS}, prev_hash, hash FROM agent_events "
                    "WHERE tenant_id = %s AND session_id = %s ORDER BY seq",
                    (tenant_id, session_id),
                )
                async for row in cursor:
                    event = row_to_event(row)
                    problems += checker.feed(
                        ChainRow(event.event_id, event.seq, event_hash_input(event), row[8], row[9])
                    )
                await cursor.execute(
                    "SELECT last_seq, last_hash FROM agent_stream_heads "
                    "WHERE tenant_id = %s AND session_id = %s",
                    (tenant_id, session_id),
                )
                head = await cursor.fetchone()
        if checker.last_seq and (
            head is None or tuple(head) != (checker.last_seq, checker.last_hash)
        ):
            problems.append(
                ChainBreak(0, checker.last_seq, "the stream head disagrees with the last event")
            )
        return problems

    async def _fetch(self, query: str, params: Sequence[Any]) -> list[StoredEvent]:
        with translate_errors():
            async with self.pool.connection() as conn:
                cursor = conn.cursor(row_factory=tuple_row)
                await cursor.execute(query, params)
                return [row_to_event(row) for row in await cursor.fetchall()]

    async def now(self) -> datetime:
        """The database's clock: leases, timers and expiry never use a process's own."""
        with translate_errors():
            async with self.pool.connection() as conn:
                cursor = conn.cursor(row_factory=tuple_row)
                await cursor.execute("SELECT now()")
                row = await cursor.fetchone()
        assert row is not None
        return row[0]  # type: ignore[no-any-return]


def _check_stream_names(event: NewEvent) -> None:
    for field, value in (("tenantId", event.tenant_id), ("sessionId", event.session_id)):
        if not value or len(value) > 128 or "\x00" in value:
            raise InvalidEvent(f"{field}: must be 1-128 characters without NUL")


class Wakeups:
    """LISTEN for append wake-ups on a dedicated connection, reconnecting on its own.

    Only a hint: :meth:`wait` also returns on timeout, and callers re-read the store either way.
    """

    def __init__(self, database_url: str, *, channel: str = WAKEUP_CHANNEL) -> None:
        self._url = database_url
        self._channel = channel
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._backoff = Backoff(initial_s=0.2, maximum_s=5.0)

    async def __aenter__(self) -> Wakeups:
        with contextlib.suppress(psycopg.OperationalError):
            await self._connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def _connect(self) -> None:
        self._conn = await psycopg.AsyncConnection.connect(self._url, autocommit=True)
        await self._conn.execute(f"LISTEN {self._channel}")
        self._backoff.reset()

    async def wait(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for a wake-up; True if one arrived."""
        if self._conn is None or self._conn.closed:
            try:
                await self._connect()
            except psycopg.OperationalError:
                await asyncio.sleep(min(timeout_s, self._backoff.next_delay()))
                return False
        assert self._conn is not None
        try:
            async for _ in self._conn.notifies(timeout=timeout_s, stop_after=1):
                return True
        except psycopg.OperationalError:
            logger.warning("wake-up connection lost; reconnecting")
            await self._conn.close()
            self._conn = None
        return False


async def tail(
    store: EventStore,
    wakeups: Wakeups,
    after: Checkpoint,
    *,
    batch: int = 1000,
    poll_s: float = 1.0,
) -> AsyncIterator[list[TailedEvent]]:
    """Batches of the gap-safe global tail after ``after``, forever; waits for wake-ups (or polls)
    when caught up. The caller checkpoints ``batch[-1].position`` when it has handled a batch."""
    position = after
    while True:
        events = await store.read_tail(position, limit=batch)
        if events:
            position = events[-1].position
            yield events
            if len(events) == batch:
                continue
        await wakeups.wait(poll_s)


__all__ = [
    "AppendResult",
    "EventStore",
    "TransactionHook",
    "Wakeups",
    "event_hash_input",
    "format_timestamp",
    "row_to_event",
    "tail",
]
