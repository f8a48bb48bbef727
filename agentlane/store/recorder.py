"""The event store's recorder: appends to and reads of ``agent_events`` and ``agent_stream_heads``.

Append takes the stream head's row lock (so ``seq`` has no gaps and ``event_id`` grows with it),
extends the hash chain and inserts, all in one transaction; an optional fence re-checks the
writer's shard lease in that same transaction. Reads for a caller filter by tenant, always;
the runner's batched command lookup names runs by execution id, which is unique across tenants.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.rows import tuple_row

from agentlane import telemetry
from agentlane.blobs.errors import BlobError
from agentlane.blobs.refs import BlobRef, Blobs, has_refs, refs_in
from agentlane.db import Connection, Database, dump_json
from agentlane.errors import DuplicateEvent, FencedOut, InvalidEvent
from agentlane.events import COMMAND_TYPES, TERMINAL_TYPES, format_timestamp, validate_data
from agentlane.hashchain import GENESIS_HASH, ChainBreak, ChainChecker, ChainRow, chain_hash
from agentlane.leases import SHARD_LEASES, Fence, fences_params
from agentlane.records import CheckedEvent, Checkpoint, NewEvent, StoredEvent
from agentlane.sharding import shard_for
from agentlane.store.group_commit import (
    Batch,
    Collective,
    GroupCommitter,
    StreamItems,
    TransactionHook,
)
from agentlane.store.lookups import SharedReads

logger = logging.getLogger(__name__)

EVENT_COLUMNS = (
    "event_id, seq, tenant_id, session_id, execution_id, event_type, payload, created_at, "
    "trace_context"
)

# The seq at a reader's position and the page after it; the outer row exists even when the page
# is empty (LEFT JOIN), so one round trip answers both.
_READ_HISTORY = f"""
SELECT at.seq, e.* FROM (
    SELECT coalesce((
        SELECT seq FROM agent_events
        WHERE tenant_id = %(t)s AND session_id = %(s)s AND event_id <= %(after)s
        ORDER BY event_id DESC LIMIT 1
    ), 0) AS seq
) AS at
LEFT JOIN LATERAL (
    SELECT {EVENT_COLUMNS} FROM agent_events
    WHERE tenant_id = %(t)s AND session_id = %(s)s AND event_id > %(after)s
    ORDER BY event_id LIMIT %(limit)s
) AS e ON true
ORDER BY e.event_id
"""

# The events of many idempotency keys in one round trip (each probe is the unique index's).
_EVENTS_BY_KEYS = f"""
SELECT {EVENT_COLUMNS}, idempotency_key
FROM unnest(%s::text[], %s::text[]) AS k(key_tenant, key)
JOIN agent_events ON tenant_id = key_tenant AND idempotency_key = key
"""

# The events of many runs (each after its own seq) in one round trip, per run in seq order, each
# probe the (execution_id, seq) index's; ``n`` numbers the runs asked for from 1.
_EVENTS_OF_RUNS = f"""
SELECT {EVENT_COLUMNS}, n
FROM unnest(%s::text[], %s::text[], %s::bigint[]) WITH ORDINALITY AS r(run_tenant, run, after, n)
JOIN agent_events ON execution_id = run AND tenant_id = run_tenant AND seq > after
ORDER BY n, seq
"""

#: NOTIFY channel of appends, sent after the commit (``Database.notify_after_commit``).
WAKEUP_CHANNEL = "agentlane_events"

# One statement locks the heads of every stream a group writes, in one global order (the
# ordinality of the sorted streams), so two groups never wait on each other in a cycle; it returns
# each head's new last_seq, its last hash and the events' createdAt. createdAt is the head's
# ``updated_at``: read on the clock once the head's row lock is held (SET runs after ON CONFLICT
# locked the row), not at the transaction's start, which may precede a wait behind writers that
# commit later times; and never below the stream's previous createdAt (clocks step back). So
# createdAt never decreases inside a stream, and exports by time skip nothing.
_LOCK_HEADS = """
{held}
INSERT INTO agent_stream_heads AS h (tenant_id, session_id, last_seq, last_hash, updated_at)
SELECT r.tenant_id, r.session_id, r.count, %(genesis)s, clock_timestamp()
FROM unnest(%(tenants)s::text[], %(sessions)s::text[], %(counts)s::bigint[], %(fences)s::text[])
     WITH ORDINALITY AS r(tenant_id, session_id, count, fence, ord)
{where}
ORDER BY r.ord
ON CONFLICT (tenant_id, session_id)
    DO UPDATE SET last_seq = h.last_seq + excluded.last_seq,
                  updated_at = greatest(clock_timestamp(), h.updated_at)
RETURNING h.tenant_id, h.session_id, h.last_seq, h.last_hash, h.updated_at
"""
_LOCK_HEADS_UNFENCED = _LOCK_HEADS.format(held="", where="")
# The lease rows of the fences are read FOR SHARE: a takeover (an UPDATE of such a row) waits
# until this transaction has committed or rolled back, so no write can slip in after the lease
# moved. A stream whose fence is not current is not locked and gets no row back.
_LOCK_HEADS_FENCED = _LOCK_HEADS.format(
    held=f"WITH held AS ({SHARD_LEASES.held_sql()})",
    where="WHERE r.fence IS NULL OR r.fence IN (SELECT key FROM held)",
)

# Columns that are the same for a whole stream travel once per stream (``s``), not once per row.
_INSERT = """
WITH s AS (
    SELECT * FROM unnest(%(tenants)b::text[], %(sessions)b::text[], %(created)b::timestamptz[],
                         %(last_hashes)b::bytea[])
         WITH ORDINALITY AS s(tenant_id, session_id, created_at, last_hash, n)
), ins AS (
    INSERT INTO agent_events (tenant_id, session_id, seq, execution_id, event_type, payload,
                              created_at, idempotency_key, prev_hash, hash, trace_context)
    SELECT s.tenant_id, s.session_id, u.seq, u.execution_id, u.event_type, u.payload::jsonb,
           s.created_at, u.idempotency_key, u.prev_hash, u.hash, u.trace_context
    FROM unnest(%(streams)b::bigint[], %(seqs)b::bigint[], %(executions)b::text[],
                %(types)b::text[], %(payloads)b::text[], %(keys)b::text[], %(prevs)b::bytea[],
                %(hashes)b::bytea[], %(traces)b::text[])
         WITH ORDINALITY AS u(stream, seq, execution_id, event_type, payload, idempotency_key,
                              prev_hash, hash, trace_context, ord)
    JOIN s ON s.n = u.stream
    ORDER BY u.ord
    ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING event_id, tenant_id, session_id, seq
), head AS (
    UPDATE agent_stream_heads h SET last_hash = s.last_hash
    FROM s WHERE h.tenant_id = s.tenant_id AND h.session_id = s.session_id
)
SELECT event_id, tenant_id, session_id, seq FROM ins
"""

_INSERT_BLOBS = """
INSERT INTO agent_event_blobs (sha256, tenant_id, event_id, size)
SELECT * FROM unnest(%(shas)s::text[], %(tenants)s::text[], %(events)s::bigint[],
                     %(sizes)s::bigint[])
"""

_REBUILD_HEADS = """
INSERT INTO agent_stream_heads AS h (tenant_id, session_id, last_seq, last_hash, updated_at)
SELECT DISTINCT ON (tenant_id, session_id) tenant_id, session_id, seq, hash, created_at
FROM agent_events ORDER BY tenant_id, session_id, seq DESC
ON CONFLICT (tenant_id, session_id) DO UPDATE
    SET last_seq = excluded.last_seq, last_hash = excluded.last_hash,
        updated_at = excluded.updated_at
    WHERE (h.last_seq, h.last_hash, h.updated_at)
          IS DISTINCT FROM (excluded.last_seq, excluded.last_hash, excluded.updated_at)
"""

# A session's completed exchanges, newest first, following fork links: a session whose first
# event is SessionForked continues its parent's history up to the cut (runs that completed at or
# before it), and so on up the lineage. The session's own earlier runs have all ended (runs of a
# session run one at a time), so only the parents' completions are bounded by the cut.
_HISTORY = """
WITH RECURSIVE lineage(session_id, upto, depth) AS (
    SELECT %(s)s::text, %(before)s::bigint, 0
    UNION ALL
    SELECT f.payload ->> 'parentSessionId', (f.payload ->> 'atSeq')::bigint + 1, l.depth + 1
    FROM lineage l
    JOIN agent_events f
      ON f.tenant_id = %(t)s AND f.session_id = l.session_id AND f.seq = 1
     AND f.event_type = 'SessionForked'
    WHERE l.depth < 32
)
SELECT a.payload ->> 'message', a.payload -> 'messageRef',
       c.payload ->> 'answer', c.payload -> 'answerRef'
FROM lineage l
JOIN agent_events a
  ON a.tenant_id = %(t)s AND a.session_id = l.session_id AND a.event_type = 'RunAccepted'
 AND a.seq < l.upto
JOIN agent_events c
  ON c.execution_id = a.execution_id AND c.event_type = 'Completed' AND c.tenant_id = a.tenant_id
 AND (l.depth = 0 OR c.seq < l.upto)
ORDER BY l.depth, a.seq DESC
LIMIT %(limit)s
"""


@dataclass(frozen=True, slots=True)
class AppendResult:
    """The stored event, and whether this call wrote it (False: its idempotency key existed)."""

    event: StoredEvent
    created: bool


@dataclass(frozen=True, slots=True)
class UnfinishedRun:
    """A run accepted and not ended, as its events say (what a work-index rebuild indexes)."""

    tenant_id: str
    session_id: str
    execution_id: str
    run_id: str
    accepted_seq: int
    started: bool
    #: Its wall-time deadline, when its budget has one and it was not cancelled already.
    deadline_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class HeadRepairs:
    """What a rebuild of the stream heads changed: heads written (missing or wrong), removed."""

    repaired: int
    removed: int


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
    return _hash_body(
        event.seq, event.tenant_id, event.session_id, event.execution_id, event.type, event.data,
        created_at,
    )


def _hash_body(
    seq: int,
    tenant_id: str,
    session_id: str,
    execution_id: str | None,
    event_type: str,
    data: dict[str, Any],
    created_at: str,
) -> dict[str, Any]:
    return {
        "seq": seq,
        "tenantId": tenant_id,
        "sessionId": session_id,
        "executionId": execution_id,
        "type": event_type,
        "data": data,
        "createdAt": created_at,
    }


def row_to_event(row: Sequence[Any]) -> StoredEvent:
    """A row of :data:`EVENT_COLUMNS`."""
    return StoredEvent(
        event_id=row[0],
        seq=row[1],
        tenant_id=row[2],
        session_id=row[3],
        execution_id=row[4],
        type=row[5],
        data=row[6],
        created_at=row[7],
        trace=row[8],
    )


async def lock_stream(conn: Connection, tenant_id: str, session_id: str) -> None:
    """Inside a caller's transaction: take the stream head's row lock, as an append does, so no
    event of the stream commits until the transaction ends (and every earlier one is visible)."""
    await conn.execute(
        "SELECT 1 FROM agent_stream_heads WHERE tenant_id = %s AND session_id = %s FOR UPDATE",
        (tenant_id, session_id),
    )


class EventStore:
    """Appends to and reads of the event log, borrowing connections from ``db``.

    Appends go through a :class:`GroupCommitter`: concurrent appends share transactions
    (``max_in_flight`` open at a time), each answered after its commit.
    """

    def __init__(
        self, db: Database, *, shards: int, max_in_flight: int = 2, blobs: Blobs | None = None
    ) -> None:
        self._db = db
        self.shards = shards
        #: Where large values go before their events commit (None: every value stays inline).
        self.blobs = blobs
        self.committer = GroupCommitter(
            db,
            self._write_group,
            max_in_flight=max_in_flight,
            on_commit=lambda: db.notify_after_commit(WAKEUP_CHANNEL),
        )
        #: Concurrent look-ups of idempotency keys, ``(tenant, key)``, share queries.
        self.key_lookups = SharedReads[tuple[str, str], StoredEvent | None](
            self._events_by_keys, None, max_in_flight=max_in_flight
        )
        #: Concurrent reads of runs' events, ``(tenant, execution, after seq)``, share queries.
        self.run_reads = SharedReads[tuple[str, str, int], list[StoredEvent]](
            self._events_of_runs, [], max_in_flight=max_in_flight
        )
        self._clock_reads = SharedReads[str, datetime | None](
            self._read_clock, None, max_in_flight=max_in_flight
        )

    # --- append -------------------------------------------------------------------------------

    async def append(
        self,
        event: NewEvent,
        *,
        fence: Fence | None = None,
        in_transaction: TransactionHook | None = None,
        collective: Collective | None = None,
    ) -> AppendResult:
        """Append one event. With an idempotency key that is already stored, write nothing and
        return the stored event (``created=False``) — also when racing writers use the same key.
        ``collective``: work done for this append together with the other appends of its group
        (see :class:`Collective`), in the same transaction."""
        if event.idempotency_key is not None:
            existing = await self.find_by_idempotency_key(event.tenant_id, event.idempotency_key)
            if existing is not None:
                return AppendResult(existing, created=False)
        if self.blobs is not None:
            (event,) = await self.blobs.offload([event])
        try:
            stored = await self._write(
                [event], fence=fence, in_transaction=in_transaction, collective=collective
            )
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
        deferrable: bool = False,
        collective: Collective | None = None,
    ) -> list[StoredEvent]:
        """Append events (one or more sessions) atomically, in the order given per session.
        ``deferrable``: the write may wait for the committer's next tick (streamed tokens).
        ``collective``: work shared with the other appends of its group (:class:`Collective`).

        Raises DuplicateEvent, writing nothing, when an idempotency key is already stored.
        """
        if not events:
            return []
        if self.blobs is not None:
            events = await self.blobs.offload(events)
        try:
            return await self._write(
                events, fence=fence, in_transaction=in_transaction, deferrable=deferrable,
                collective=collective,
            )
        except _KeyTaken as taken:
            raise DuplicateEvent(tenant_id=taken.tenant_id, idempotency_key=taken.keys[0]) from None

    async def append_in_transaction(
        self, conn: Connection, events: Sequence[NewEvent]
    ) -> list[StoredEvent]:
        """Append to streams inside a caller's open transaction (a TransactionHook), e.g. a command
        that must write several events atomically. Idempotency keys conflict as DuplicateEvent."""
        if self.blobs is not None:
            events = await self.blobs.offload(events)
        batch = Batch(_by_stream(events), None, None, trace=telemetry.traceparent())
        try:
            (written,) = await self._write_group(conn, [batch])
        except _KeyTaken as taken:
            raise DuplicateEvent(tenant_id=taken.tenant_id, idempotency_key=taken.keys[0]) from None
        assert not isinstance(written, FencedOut)
        return written

    async def _write(
        self,
        events: Sequence[NewEvent],
        *,
        fence: Fence | None,
        in_transaction: TransactionHook | None,
        deferrable: bool = False,
        collective: Collective | None = None,
    ) -> list[StoredEvent]:
        streams = _by_stream(events)
        if fence is not None:
            if fence.table is not SHARD_LEASES:
                raise ValueError("appends are fenced by shard leases")
            for tenant, session in (key for key, _ in streams):
                if shard_for(tenant, session, self.shards) != fence.key:
                    raise fence.refused()
        with telemetry.span(
            "agentlane.store", "append", attributes={"agentlane.events": len(events)}
        ):
            return await self.committer.commit(
                Batch(
                    streams, fence, in_transaction, deferrable, collective,
                    trace=telemetry.traceparent(),
                )
            )

    async def _write_group(
        self, conn: Connection, batches: list[Batch]
    ) -> list[list[StoredEvent] | FencedOut]:
        """Write ``batches`` in ``conn``'s open transaction: two statements whatever their number
        (lock the heads, then insert and move the heads' hashes). Per batch its stored events,
        or FencedOut (nothing of it written) when its fence is not current."""
        streams: dict[tuple[str, str], list[tuple[int, list[tuple[NewEvent, dict[str, Any]]]]]]
        streams = {}
        fence_of: dict[tuple[str, str], Fence | None] = {}
        for index, batch in enumerate(batches):
            for key, items in batch.streams:
                streams.setdefault(key, []).append((index, items))
                fence_of[key] = batch.fence
        keys = sorted(streams)
        counts = {key: sum(len(items) for _, items in streams[key]) for key in keys}
        fences = {fence for fence in fence_of.values() if fence is not None}
        params: dict[str, Any] = {
            "tenants": [tenant for tenant, _ in keys],
            "sessions": [session for _, session in keys],
            "counts": [counts[key] for key in keys],
            "fences": [None if fence_of[k] is None else str(fence_of[k].key) for k in keys],  # type: ignore[union-attr]
            "genesis": GENESIS_HASH,
        }
        if fences:
            params |= fences_params(fences)
        cursor = conn.cursor(row_factory=tuple_row)
        await cursor.execute(_LOCK_HEADS_FENCED if fences else _LOCK_HEADS_UNFENCED, params)
        heads = {(row[0], row[1]): row[2:] for row in await cursor.fetchall()}
        refused = {index for key in keys if key not in heads for index, _ in streams[key]}

        rows = _Rows()
        pending: list[list[tuple[NewEvent, dict[str, Any], int, str | None]]] = [
            [] for _ in batches
        ]
        for key in keys:
            if key not in heads:
                continue
            last_seq, prev_hash, created_at = heads[key]
            created_text = format_timestamp(created_at)
            seq = last_seq - counts[key] + 1
            stream = rows.stream(key, created_at)
            for index, items in streams[key]:
                batch_trace = batches[index].trace
                for event, data in items:
                    body = _hash_body(
                        seq, *key, event.execution_id, event.type, data, created_text
                    )
                    digest = chain_hash(prev_hash, body)
                    trace = event.trace or batch_trace
                    rows.add(stream, seq, event, data, prev_hash, digest, trace)
                    pending[index].append((event, data, seq, trace))
                    prev_hash = digest
                    seq += 1
            rows.last_hashes.append(prev_hash)
        ids: dict[tuple[str, str, int], int] = {}
        if rows.count:
            await cursor.execute(_INSERT, rows.params())
            ids = {(t, s, seq): event_id for event_id, t, s, seq in await cursor.fetchall()}
        if len(ids) != rows.count:
            raise rows.taken(ids)
        if rows.blobs:
            await cursor.execute(_INSERT_BLOBS, rows.blob_params(ids))
        outcomes: list[list[StoredEvent] | FencedOut] = []
        for index, (batch, events) in enumerate(zip(batches, pending, strict=True)):
            if index in refused:
                outcomes.append(fence_of[batch.streams[0][0]].refused())  # type: ignore[union-attr]
                continue
            outcomes.append([
                StoredEvent(
                    event_id=ids[(event.tenant_id, event.session_id, seq)],
                    seq=seq,
                    tenant_id=event.tenant_id,
                    session_id=event.session_id,
                    execution_id=event.execution_id,
                    type=event.type,
                    data=data,
                    created_at=heads[(event.tenant_id, event.session_id)][2],
                    trace=trace,
                )
                for event, data, seq, trace in events
            ])
        return outcomes

    # --- reads --------------------------------------------------------------------------------

    async def find_by_idempotency_key(self, tenant_id: str, key: str) -> StoredEvent | None:
        """The event ``tenant_id`` stored with idempotency key ``key``, or None (concurrent
        look-ups share queries: :class:`SharedReads`)."""
        return await self.key_lookups.get((tenant_id, key))

    async def _events_by_keys(
        self, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], StoredEvent | None]:
        async with self._db.connection() as conn:
            cursor = conn.cursor(row_factory=tuple_row)
            await cursor.execute(
                _EVENTS_BY_KEYS, ([tenant for tenant, _ in keys], [key for _, key in keys])
            )
            return {(row[2], row[-1]): row_to_event(row) for row in await cursor.fetchall()}

    async def read_session(
        self,
        tenant_id: str,
        session_id: str,
        *,
        gt: int = 0,
        lte: int | None = None,
        gt_seq: int | None = None,
        lte_seq: int | None = None,
        desc: bool = False,
        limit: int | None = 1000,
    ) -> list[StoredEvent]:
        """A session's events with ``gt < eventId <= lte`` and ``gt_seq < seq <= lte_seq`` (each
        bound optional), in ``seq`` order (``desc``: newest first), at most ``limit``.

        Within a session ``eventId`` grows with ``seq``, so both bounds name the same order.
        """
        clauses = ["tenant_id = %s", "session_id = %s", "event_id > %s"]
        params: list[Any] = [tenant_id, session_id, gt]
        for clause, value in (
            ("event_id <= %s", lte), ("seq > %s", gt_seq), ("seq <= %s", lte_seq)
        ):
            if value is not None:
                clauses.append(clause)
                params.append(value)
        # The index that serves the bound also serves the order.
        order = "seq" if gt_seq is not None or lte_seq is not None else "event_id"
        query = (
            f"SELECT {EVENT_COLUMNS} FROM agent_events WHERE {' AND '.join(clauses)} "
            f"ORDER BY {order}{' DESC' if desc else ''}"
        )
        if limit is not None:
            query += " LIMIT %s"
            params.append(limit)
        return await self._fetch(query, params)

    async def read_history(
        self, tenant_id: str, session_id: str, *, after_event_id: int, limit: int
    ) -> tuple[int, list[StoredEvent]]:
        """What a reader that holds ``after_event_id`` is missing, in one statement: the ``seq``
        of the session's last event with ``eventId <= after_event_id`` (0: none) and up to
        ``limit`` events after it, in order."""
        async with self._db.connection() as conn:
            cursor = conn.cursor(row_factory=tuple_row)
            await cursor.execute(
                _READ_HISTORY,
                {"t": tenant_id, "s": session_id, "after": after_event_id, "limit": limit},
            )
            rows = await cursor.fetchall()
        seq_at = rows[0][0] if rows else 0
        return seq_at, [row_to_event(row[1:]) for row in rows if row[1] is not None]

    async def read_execution(
        self,
        tenant_id: str,
        execution_id: str,
        *,
        gt_seq: int = 0,
        types: Collection[str] | None = None,
    ) -> list[StoredEvent]:
        """One run's events after ``gt_seq`` (of ``types`` when given), in ``seq`` order; empty for
        another tenant's run. Concurrent reads of whole runs share queries
        (:class:`SharedReads`)."""
        if types is None:
            return list(await self.run_reads.get((tenant_id, execution_id, gt_seq)))
        return await self._fetch(
            f"SELECT {EVENT_COLUMNS} FROM agent_events WHERE execution_id = %s AND tenant_id = %s "
            "AND seq > %s AND event_type = ANY(%s) ORDER BY seq",
            (execution_id, tenant_id, gt_seq, sorted(types)),
        )

    async def _events_of_runs(
        self, runs: Sequence[tuple[str, str, int]]
    ) -> dict[tuple[str, str, int], list[StoredEvent]]:
        async with self._db.connection() as conn:
            cursor = conn.cursor(row_factory=tuple_row)
            await cursor.execute(_EVENTS_OF_RUNS, tuple(map(list, zip(*runs, strict=True))))
            found: dict[tuple[str, str, int], list[StoredEvent]] = {}
            for row in await cursor.fetchall():
                found.setdefault(runs[row[-1] - 1], []).append(row_to_event(row))
            return found

    async def event_at(
        self, tenant_id: str, session_id: str, event_id: int
    ) -> tuple[int, bytes] | None:
        """``(seq, hash)`` of the session's event ``event_id``; None when it has no such event."""
        async with self._db.connection() as conn:
            row = await (
                await conn.execute(
                    "SELECT seq, hash FROM agent_events "
                    "WHERE tenant_id = %s AND session_id = %s AND event_id = %s",
                    (tenant_id, session_id, event_id),
                )
            ).fetchone()
        return None if row is None else (int(row[0]), bytes(row[1]))

    async def blob_of(self, tenant_id: str, sha256: str) -> BlobRef | None:
        """The blob ``sha256`` when an event of ``tenant_id`` references it (None otherwise: a
        tenant reads only the blobs of its own events)."""
        async with self._db.connection() as conn:
            row = await (
                await conn.execute(
                    "SELECT size FROM agent_event_blobs WHERE sha256 = %s AND tenant_id = %s "
                    "LIMIT 1",
                    (sha256, tenant_id),
                )
            ).fetchone()
        return None if row is None else BlobRef(sha256, int(row[0]))

    async def session_exists(self, tenant_id: str, session_id: str) -> bool:
        """True when ``tenant_id`` has at least one event in ``session_id`` (other tenants:
        False)."""
        async with self._db.connection() as conn:
            row = await (
                await conn.execute(
                    "SELECT 1 FROM agent_stream_heads WHERE tenant_id = %s AND session_id = %s",
                    (tenant_id, session_id),
                )
            ).fetchone()
        return row is not None

    async def heads_at(
        self, streams: Collection[tuple[str, str]], at: Checkpoint
    ) -> dict[tuple[str, str], int]:
        """Per ``(tenant, session)``: its highest ``seq`` among events at or before the tail
        position ``at`` (0 when none). A tail reader that has handled everything up to ``at``
        continues such a stream right after it, whatever order the tail hands out next."""
        if not streams:
            return {}
        tenants, sessions = zip(*streams, strict=True)
        async with self._db.connection() as conn:
            rows = await (
                await conn.execute(
                    # Newest first: the latest seq is almost always already behind ``at``.
                    "SELECT k.tenant_id, k.session_id, coalesce(("
                    "  SELECT e.seq FROM agent_events e"
                    "  WHERE e.tenant_id = k.tenant_id AND e.session_id = k.session_id"
                    "    AND (e.tx_id, e.event_id) <= (%s::text::xid8, %s)"
                    "  ORDER BY e.seq DESC LIMIT 1), 0) "
                    "FROM unnest(%s::text[], %s::text[]) AS k(tenant_id, session_id)",
                    (str(at.tx_id), at.event_id, list(tenants), list(sessions)),
                )
            ).fetchall()
        return {(str(row[0]), str(row[1])): int(row[2]) for row in rows}

    async def latest_commands(self, execution_ids: Sequence[str]) -> dict[str, int]:
        """Per run of ``execution_ids`` that has any: the ``eventId`` of its latest command
        (signal or cancel). Runs are named by their globally unique execution id."""
        if not execution_ids:
            return {}
        async with self._db.connection() as conn:
            rows = await (
                await conn.execute(
                    "SELECT execution_id, max(event_id) FROM agent_events "
                    "WHERE execution_id = ANY(%s::text[]) AND event_type = ANY(%s::text[]) "
                    "GROUP BY execution_id",
                    (list(execution_ids), sorted(COMMAND_TYPES)),
                )
            ).fetchall()
        return {str(row[0]): int(row[1]) for row in rows}

    async def completed_exchanges(
        self, tenant_id: str, session_id: str, *, before_seq: int, limit: int
    ) -> list[tuple[str, str]]:
        """The session's last ``limit`` runs accepted before ``before_seq`` that completed, oldest
        first, as ``(message, answer)``; a forked session's continue its parent's up to the cut."""
        async with self._db.connection() as conn:
            rows = await (
                await conn.execute(
                    _HISTORY,
                    {"t": tenant_id, "s": session_id, "before": before_seq, "limit": limit},
                )
            ).fetchall()
        return [
            (await self._text(message, message_ref), await self._text(answer, answer_ref))
            for message, message_ref, answer, answer_ref in reversed(rows)
        ]

    async def _text(self, value: str | None, ref: dict[str, Any] | None) -> str:
        """A message or an answer, read from its blob when the event holds a reference."""
        if ref is None:
            return str(value)
        return str(await self._blobs().value(BlobRef(str(ref["sha256"]), int(ref["size"]))))

    async def resolve(self, events: Sequence[StoredEvent]) -> list[StoredEvent]:
        """``events`` with the values their blobs hold in place of the references (what code
        that reads results needs: a run's replay, its history)."""
        if not any(has_refs(event) for event in events):
            return list(events)
        return await self._blobs().resolve(events)

    def _blobs(self) -> Blobs:
        if self.blobs is None:
            raise BlobError(
                "an event references a blob and no blob store is configured (AGENTLANE_BLOB_STORE)"
            )
        return self.blobs

    @staticmethod
    async def unfinished_runs(conn: Connection) -> list[UnfinishedRun]:
        """Every run accepted and not ended (no terminal event), read on ``conn`` (a rebuild of
        the work index reads them under its lock)."""
        cursor = await conn.execute(
            "SELECT a.tenant_id, a.session_id, a.execution_id, a.payload ->> 'runId', a.seq, "
            "  EXISTS (SELECT 1 FROM agent_events s WHERE s.execution_id = a.execution_id "
            "          AND s.event_type = 'RunStarted'), "
            "  CASE WHEN NOT EXISTS (SELECT 1 FROM agent_events c "
            "       WHERE c.execution_id = a.execution_id AND c.event_type = 'CancelRequested') "
            "  THEN a.created_at + make_interval(secs => "
            "       (a.payload -> 'budget' ->> 'capSeconds')::float8) END "
            "FROM agent_events a WHERE a.event_type = 'RunAccepted' "
            "AND NOT EXISTS (SELECT 1 FROM agent_events t WHERE t.execution_id = a.execution_id "
            "                AND t.event_type = ANY(%s::text[]))",
            (sorted(TERMINAL_TYPES),),
        )
        return [
            UnfinishedRun(
                str(r[0]), str(r[1]), str(r[2]), str(r[3]), int(r[4]), bool(r[5]), r[6]
            )
            for r in await cursor.fetchall()
        ]

    async def rebuild_heads(self) -> HeadRepairs:
        """Recreate ``agent_stream_heads`` from the events: each stream's last seq, hash and
        createdAt; heads of streams without events go. Appends wait meanwhile (the table is
        locked), so no append can slip between the read and the repair."""
        async with self._db.transaction() as conn:
            await conn.execute("LOCK TABLE agent_stream_heads IN EXCLUSIVE MODE")
            repaired = await conn.execute(_REBUILD_HEADS)
            removed = await conn.execute(
                "DELETE FROM agent_stream_heads h WHERE NOT EXISTS (SELECT 1 FROM agent_events e "
                "WHERE e.tenant_id = h.tenant_id AND e.session_id = h.session_id)"
            )
        return HeadRepairs(repaired=repaired.rowcount, removed=removed.rowcount)

    async def check_chain(self, tenant_id: str, session_id: str) -> list[ChainBreak]:
        """Re-check one stream's hash chain, seq contiguity and head: every place it breaks."""
        checker = ChainChecker()
        problems: list[ChainBreak] = []
        async with self._db.connection() as conn:
            cursor = conn.cursor(row_factory=tuple_row)
            await cursor.execute(
                f"SELECT {EVENT_COLUMNS}, prev_hash, hash FROM agent_events "
                "WHERE tenant_id = %s AND session_id = %s ORDER BY seq",
                (tenant_id, session_id),
            )
            async for row in cursor:
                event = row_to_event(row)
                problems += checker.feed(
                    ChainRow(event.event_id, event.seq, event_hash_input(event), row[9], row[10])
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

    async def now(self) -> datetime:
        """The database's clock: leases, timers and expiry never use a process's own. Concurrent
        callers share queries; each gets a time read after it asked."""
        moment = await self._clock_reads.get("now")
        assert moment is not None
        return moment

    async def _read_clock(self, keys: Sequence[str]) -> dict[str, datetime | None]:
        async with self._db.connection() as conn:
            row = await (await conn.execute("SELECT now()")).fetchone()
        assert row is not None
        return dict.fromkeys(keys, row[0])

    async def _fetch(self, query: str, params: Sequence[Any]) -> list[StoredEvent]:
        async with self._db.connection() as conn:
            cursor = conn.cursor(row_factory=tuple_row)
            await cursor.execute(query, params)
            return [row_to_event(row) for row in await cursor.fetchall()]


class _Rows:
    """The parameters of one insert of events: per stream its names, createdAt and new last hash
    (``stream`` numbers them from 1), per event the rest."""

    def __init__(self) -> None:
        self.tenants: list[str] = []
        self.sessions: list[str] = []
        self.created: list[datetime] = []
        self.last_hashes: list[bytes] = []
        self.streams: list[int] = []
        self.seqs: list[int] = []
        self.executions: list[str | None] = []
        self.types: list[str] = []
        self.payloads: list[str] = []
        self.keys: list[str | None] = []
        self.prevs: list[bytes] = []
        self.hashes: list[bytes] = []
        self.traces: list[str | None] = []
        #: ``(stream, seq, reference)`` of every blob an event names.
        self.blobs: list[tuple[int, int, BlobRef]] = []

    @property
    def count(self) -> int:
        return len(self.seqs)

    def stream(self, key: tuple[str, str], created_at: datetime) -> int:
        self.tenants.append(key[0])
        self.sessions.append(key[1])
        self.created.append(created_at)
        return len(self.tenants)

    def add(
        self,
        stream: int,
        seq: int,
        event: NewEvent,
        data: dict[str, Any],
        prev_hash: bytes,
        digest: bytes,
        trace: str | None,
    ) -> None:
        self.streams.append(stream)
        self.seqs.append(seq)
        self.executions.append(event.execution_id)
        self.types.append(event.type)
        self.payloads.append(dump_json(data))
        self.keys.append(event.idempotency_key)
        self.prevs.append(prev_hash)
        self.hashes.append(digest)
        self.traces.append(trace)
        self.blobs.extend((stream, seq, ref) for _, ref in refs_in(event.type, data))

    def blob_params(self, ids: dict[tuple[str, str, int], int]) -> dict[str, Any]:
        """The rows of ``agent_event_blobs`` for the events inserted (``ids``)."""
        shas, tenants, event_ids, sizes = [], [], [], []
        for stream, seq, ref in self.blobs:
            tenant = self.tenants[stream - 1]
            shas.append(ref.sha256)
            tenants.append(tenant)
            event_ids.append(ids[(tenant, self.sessions[stream - 1], seq)])
            sizes.append(ref.size)
        return {"shas": shas, "tenants": tenants, "events": event_ids, "sizes": sizes}

    def params(self) -> dict[str, Any]:
        return {
            "tenants": self.tenants,
            "sessions": self.sessions,
            "created": self.created,
            "last_hashes": self.last_hashes,
            "streams": self.streams,
            "seqs": self.seqs,
            "executions": self.executions,
            "types": self.types,
            "payloads": self.payloads,
            "keys": self.keys,
            "prevs": self.prevs,
            "hashes": self.hashes,
            "traces": self.traces,
        }

    def taken(self, ids: Collection[tuple[str, str, int]]) -> _KeyTaken:
        """The error of an insert that skipped rows: their idempotency keys were stored."""
        missing = [
            (self.tenants[stream - 1], key)
            for stream, seq, key in zip(self.streams, self.seqs, self.keys, strict=True)
            if key is not None
            and (self.tenants[stream - 1], self.sessions[stream - 1], seq) not in ids
        ]
        return _KeyTaken(missing[0][0], [key for _, key in missing])


def _by_stream(events: Sequence[NewEvent]) -> list[StreamItems]:
    """Validated events grouped by stream, streams in one global order, so two batches never wait
    on each other's head locks in a cycle."""
    by_stream: dict[tuple[str, str], list[tuple[NewEvent, dict[str, Any]]]] = {}
    for event in events:
        _check_stream_names(event)
        data = event.data if type(event) is CheckedEvent else validate_data(event.type, event.data)
        item = (event, data)
        by_stream.setdefault((event.tenant_id, event.session_id), []).append(item)
    return sorted(by_stream.items())


def _check_stream_names(event: NewEvent) -> None:
    for field, value in (("tenantId", event.tenant_id), ("sessionId", event.session_id)):
        if not value or len(value) > 128 or "\x00" in value:
            raise InvalidEvent(f"{field}: must be 1-128 characters without NUL")
