"""The runners' work index, ``run_index``: one row per run that has not ended (ddl/0003).

Commands add and wake rows in the transaction of the events they append (and once committed
NOTIFY the owning shard on ``WORK_CHANNEL``: a hint, owners also poll); the engine moves a row
with the events that change its run and deletes it with the terminal event; runners read which
runs are due. A row's ``wake_at`` is when its shard's owner must look at the run next (NULL: only
a signal wakes it).

Setting ``wake_at`` must never hide a command: a signal or cancel that committed while the engine
was deciding to wait makes the row due at once instead (:meth:`RunIndex.apply_change`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from agentlane.db import Connection, Database
from agentlane.errors import TooManyActiveRuns
from agentlane.leases import Fence, check_fence
from agentlane.records import StoredEvent
from agentlane.sharding import shard_for
from agentlane.store import EventStore, UnfinishedRun, fragments, lock_stream


@dataclass(frozen=True, slots=True)
class ActiveRunCap:
    """At most ``limit`` unfinished runs per tenant (:meth:`RunIndex.hold_caps`)."""

    limit: int
    retry_after_s: float


@dataclass(frozen=True, slots=True)
class NewRun:
    """A run to index as accepted (:meth:`RunIndex.enqueue_all`), under its tenant's cap."""

    execution_id: str
    tenant_id: str
    session_id: str
    run_id: str
    shard_id: int
    cap: ActiveRunCap | None = None
    #: Seconds from now to the run's wall-time deadline (None: none).
    deadline_s: float | None = None


#: NOTIFY channel of work: the payload is the shard that has a new or woken run.
WORK_CHANNEL = "agentlane_work"

Wake = Literal["keep", "now", "never"] | datetime
Status = Literal["queued", "running", "suspended"]


@dataclass(frozen=True, slots=True)
class DueRun:
    """A run the owner of its shard must look at now."""

    tenant_id: str
    session_id: str
    execution_id: str
    shard_id: int


@dataclass(frozen=True, slots=True)
class IndexChange:
    """What to do to a run's row: delete it, or set its status and next wake time."""

    status: Status | None = None
    wake: Wake = "keep"
    delete: bool = False


@dataclass(slots=True)
class PendingChange:
    """A run's index change riding on its engine's append (:meth:`RunIndex.apply_changes`);
    ``commands_waiting`` is filled in by it, as :meth:`RunIndex.apply_change` answers."""

    tenant_id: str
    execution_id: str
    seen_seq: int
    change: IndexChange
    commands_waiting: bool = False


@dataclass(frozen=True, slots=True)
class PinnedRun:
    """An unfinished run and the workflow version it runs with."""

    tenant_id: str
    execution_id: str
    session_id: str
    workflow: str
    version: str


@dataclass(frozen=True, slots=True)
class ShardProgress:
    """Due work of one shard that no advance handles yet, and when its next timer fires."""

    oldest_due_age_s: float | None
    next_wake_in_s: float | None
    #: How many of its head runs are due now (not ``busy``).
    due_runs: int = 0


_NEWER_FOR_ROW = fragments.commands_after(execution="v.execution", seen="v.seen")

# The UPDATE of apply_changes: per row its own status (NULL: keep) and wake mode.
_APPLY_CHANGES = f"""
UPDATE run_index r SET
    updated_at = now(),
    status = coalesce(v.status, r.status),
    wake_at = CASE v.wake
        WHEN 'keep' THEN r.wake_at
        WHEN 'now' THEN now()
        WHEN 'never' THEN CASE WHEN {_NEWER_FOR_ROW} THEN now() END
        ELSE CASE WHEN {_NEWER_FOR_ROW} THEN now() ELSE v.wake_at END
    END
FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::text[], %s::text[], %s::timestamptz[])
     AS v(tenant, execution, seen, status, wake, wake_at)
WHERE r.tenant_id = v.tenant AND r.execution_id = v.execution
RETURNING r.execution_id, {_NEWER_FOR_ROW}
"""


def _wake_mode(wake: Wake) -> str:
    return "at" if isinstance(wake, datetime) else wake


# The head run of each session: runs of a session execute one at a time, in acceptance order.
_HEADS = """
    r.shard_id = ANY(%(shards)s::int[]) AND r.execution_id <> ALL(%(busy)s::text[])
    AND NOT EXISTS (
        SELECT 1 FROM run_index p
        WHERE p.tenant_id = r.tenant_id AND p.session_id = r.session_id
          AND p.accepted_seq < r.accepted_seq)
"""

# Fair across tenants: a due run's turn is its rank among its tenant's due runs (oldest first)
# plus the runs of that tenant the caller already has in flight, so the first run of a tenant with
# nothing running goes before the 65th of a tenant with 64 running, whatever their ages; within a
# turn, the oldest first. No tenant gets more than ``per_tenant`` in flight.
_DUE = f"""
WITH due AS (
    SELECT r.tenant_id, r.session_id, r.execution_id, r.shard_id, r.wake_at,
           row_number() OVER (PARTITION BY r.tenant_id ORDER BY r.wake_at) AS n
    FROM run_index r
    WHERE r.wake_at <= now() AND {_HEADS}
), turns AS (
    SELECT d.*, d.n + coalesce(f.running, 0) AS turn
    FROM due d
    LEFT JOIN unnest(%(tenants)s::text[], %(running)s::int[]) AS f(tenant_id, running)
        USING (tenant_id)
)
SELECT tenant_id, session_id, execution_id, shard_id
FROM turns
WHERE turn <= %(per_tenant)s
ORDER BY turn, wake_at
LIMIT %(limit)s
"""

_PROGRESS = f"""
SELECT r.shard_id,
       extract(epoch FROM now() - min(r.wake_at) FILTER (WHERE r.wake_at <= now()))::float8,
       extract(epoch FROM min(r.wake_at) FILTER (WHERE r.wake_at > now()) - now())::float8,
       count(*) FILTER (WHERE r.wake_at <= now())::int
FROM run_index r
WHERE r.wake_at IS NOT NULL AND {_HEADS}
GROUP BY r.shard_id
"""


@dataclass(frozen=True, slots=True)
class IndexRepairs:
    """What a rebuild of the work index changed: rows added (a run without one), fixed (wrong
    identity columns) and removed (a run that ended, or none at all)."""

    added: int
    fixed: int
    removed: int


_REPAIR = """
WITH wanted AS (
    SELECT * FROM unnest(%(executions)s::text[], %(tenants)s::text[], %(sessions)s::text[],
                         %(runs)s::text[], %(shards)s::int[], %(seqs)s::bigint[],
                         %(statuses)s::text[], %(deadlines)s::timestamptz[])
        AS w(execution_id, tenant_id, session_id, run_id, shard_id, accepted_seq, status,
             deadline_at)
)
INSERT INTO run_index AS r (execution_id, tenant_id, session_id, run_id, shard_id, accepted_seq,
                            status, wake_at, deadline_at)
SELECT execution_id, tenant_id, session_id, run_id, shard_id, accepted_seq, status, now(),
       deadline_at
FROM wanted
ON CONFLICT (execution_id) DO UPDATE
    SET tenant_id = excluded.tenant_id, session_id = excluded.session_id,
        run_id = excluded.run_id, shard_id = excluded.shard_id,
        accepted_seq = excluded.accepted_seq, wake_at = now(), updated_at = now()
    WHERE (r.tenant_id, r.session_id, r.run_id, r.shard_id, r.accepted_seq)
          IS DISTINCT FROM (excluded.tenant_id, excluded.session_id, excluded.run_id,
                            excluded.shard_id, excluded.accepted_seq)
RETURNING r.shard_id, (xmax = 0) AS added
"""


class RunIndex:
    """Reads and writes of ``run_index``, borrowing connections from ``db`` (or running inside a
    caller's transaction, for the methods that take one)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # --- commands (inside the transaction of the command's events) ---------------------------

    @staticmethod
    async def enqueue(
        conn: Connection,
        *,
        execution_id: str,
        tenant_id: str,
        session_id: str,
        run_id: str,
        shard_id: int,
        accepted_seq: int,
        deadline_s: float | None = None,
    ) -> None:
        """Index a run just accepted, due now (then :meth:`wake_shard` once committed)."""
        await conn.execute(
            "INSERT INTO run_index (execution_id, tenant_id, session_id, run_id, shard_id, "
            "accepted_seq, status, wake_at, deadline_at) VALUES (%s, %s, %s, %s, %s, %s, "
            "'queued', now(), now() + make_interval(secs => %s))",
            (execution_id, tenant_id, session_id, run_id, shard_id, accepted_seq, deadline_s),
        )

    @staticmethod
    async def enqueue_all(
        conn: Connection, runs: list[tuple[Any, list[StoredEvent]]]
    ) -> None:
        """:meth:`enqueue` for the runs of a group commit, in one statement: each item a
        :class:`NewRun`, with the events its append wrote (the first is its ``RunAccepted``)."""
        new = [(run, written[0].seq) for run, written in runs]
        await conn.execute(
            "INSERT INTO run_index (execution_id, tenant_id, session_id, run_id, shard_id, "
            "accepted_seq, status, wake_at, deadline_at) SELECT e, t, s, r, sh, seq, 'queued', "
            "now(), now() + make_interval(secs => d) FROM unnest(%s::text[], %s::text[], "
            "%s::text[], %s::text[], %s::int[], %s::bigint[], %s::float8[]) "
            "AS u(e, t, s, r, sh, seq, d)",
            (
                [r.execution_id for r, _ in new],
                [r.tenant_id for r, _ in new],
                [r.session_id for r, _ in new],
                [r.run_id for r, _ in new],
                [r.shard_id for r, _ in new],
                [seq for _, seq in new],
                [r.deadline_s for r, _ in new],
            ),
        )
        await RunIndex.hold_caps(conn, {r.tenant_id: r.cap for r, _ in new if r.cap is not None})

    @staticmethod
    async def hold_caps(conn: Connection, caps: Mapping[str, ActiveRunCap]) -> None:
        """Raise TooManyActiveRuns, failing the transaction that indexed new runs, when a
        tenant of ``caps`` now has more unfinished runs than its cap allows.

        Exact across racing transactions and instances: each tenant's starts take a transaction
        lock of the tenant before counting, and the count is a statement of its own, so it sees
        every start that held the lock before (committed, since the lock is held to the end).
        Runs that end meanwhile only lower the count.
        """
        if not caps:
            return
        tenants = sorted(caps)
        # One order for every transaction: two tenants' locks never wait on each other in a cycle.
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('agentlane.active_runs/' || t, 0)) "
            "FROM unnest(%s::text[]) WITH ORDINALITY AS u(t, n) ORDER BY n",
            (tenants,),
        )
        cursor = await conn.execute(
            "SELECT u.t, (SELECT count(*) FROM (SELECT 1 FROM run_index r WHERE r.tenant_id = u.t "
            "LIMIT u.cap + 1) AS x) FROM unnest(%s::text[], %s::int[]) AS u(t, cap)",
            (tenants, [caps[t].limit for t in tenants]),
        )
        for tenant, active in await cursor.fetchall():
            cap = caps[tenant]
            if active > cap.limit:
                raise TooManyActiveRuns(tenant, cap.limit, retry_after_s=cap.retry_after_s)

    async def overdue(self, shards: Sequence[int], *, limit: int = 100) -> list[tuple[str, str]]:
        """(tenant, execution) of runs of ``shards`` past their wall-time deadline."""
        if not shards:
            return []
        async with self._db.connection() as conn:
            cursor = await conn.execute(
                "SELECT tenant_id, execution_id FROM run_index WHERE shard_id = ANY(%s::int[]) "
                "AND deadline_at <= now() ORDER BY deadline_at LIMIT %s",
                (list(shards), limit),
            )
            return [(str(t), str(e)) for t, e in await cursor.fetchall()]

    @staticmethod
    async def expire(conn: Connection, tenant_id: str, execution_id: str) -> bool:
        """Clear a run's passed deadline and make it due; False when it has none any more (it
        ended, or another owner expired it first)."""
        cursor = await conn.execute(
            "UPDATE run_index SET deadline_at = NULL, wake_at = now(), updated_at = now() "
            "WHERE tenant_id = %s AND execution_id = %s AND deadline_at <= now()",
            (tenant_id, execution_id),
        )
        return cursor.rowcount == 1

    @staticmethod
    async def wake(conn: Connection, tenant_id: str, execution_ids: Sequence[str]) -> int:
        """Make runs due now (a command arrived for them); how many rows there were (a run that
        has ended has none)."""
        cursor = await conn.execute(
            "UPDATE run_index SET wake_at = now(), updated_at = now() "
            "WHERE tenant_id = %s AND execution_id = ANY(%s::text[])",
            (tenant_id, list(execution_ids)),
        )
        return cursor.rowcount

    def wake_shard(self, shard_id: int) -> None:
        """Tell the shard's owner it has work: call after the commit that gave it the work."""
        self._db.notify_after_commit(WORK_CHANNEL, str(shard_id))

    @staticmethod
    async def session_runs(conn: Connection, tenant_id: str, session_id: str) -> list[str]:
        """The session's runs that have not ended, in acceptance order."""
        cursor = await conn.execute(
            "SELECT execution_id FROM run_index WHERE tenant_id = %s AND session_id = %s "
            "ORDER BY accepted_seq",
            (tenant_id, session_id),
        )
        return [row[0] for row in await cursor.fetchall()]

    # --- repair -------------------------------------------------------------------------------

    async def rebuild(self, shards: int) -> IndexRepairs:
        """Make the index say what the events say: a row for every run accepted and not ended,
        none for any other. Rows that are right keep their status and wake time (the engine's
        own); a row added or fixed is due now, and the engine re-derives the rest from the run's
        journal on its next advance. Commands and the engine wait meanwhile (the table is
        locked before the events are read), so none of their writes can slip between the two.
        ``shards`` must be the database's shard count (checked by the caller)."""
        async with self._db.transaction() as conn:
            await conn.execute("LOCK TABLE run_index IN EXCLUSIVE MODE")
            runs = await EventStore.unfinished_runs(conn)
            removed = await conn.execute(
                "DELETE FROM run_index WHERE execution_id <> ALL(%s::text[])",
                ([run.execution_id for run in runs],),
            )
            cursor = await conn.execute(_REPAIR, _repair_params(runs, shards))
            changed = await cursor.fetchall()
        for shard in sorted({int(row[0]) for row in changed}):
            self.wake_shard(shard)
        added = sum(1 for row in changed if row[1])
        return IndexRepairs(added=added, fixed=len(changed) - added, removed=removed.rowcount)

    # --- reads --------------------------------------------------------------------------------

    async def route(self, tenant_id: str, execution_id: str) -> tuple[str, int] | None:
        """``(session_id, shard_id)`` of a run that has not ended; None otherwise."""
        row = await self._row(
            "SELECT session_id, shard_id FROM run_index WHERE tenant_id = %s AND execution_id = %s",
            (tenant_id, execution_id),
        )
        return None if row is None else (str(row[0]), int(row[1]))

    async def status(self, tenant_id: str, execution_id: str) -> Status | None:
        """The status of a run that has not ended; None otherwise (ended, or unknown)."""
        row = await self._row(
            "SELECT status FROM run_index WHERE tenant_id = %s AND execution_id = %s",
            (tenant_id, execution_id),
        )
        return None if row is None else row[0]

    async def count_active(self, tenant_id: str, *, limit: int) -> int:
        """How many runs of ``tenant_id`` have not ended, counted up to ``limit``."""
        row = await self._row(
            "SELECT count(*) FROM (SELECT 1 FROM run_index WHERE tenant_id = %s LIMIT %s) AS r",
            (tenant_id, limit),
        )
        return int(row[0]) if row else 0

    async def tenant_of(self, execution_id: str) -> str | None:
        """The tenant of an unfinished run (execution ids are unique across tenants)."""
        row = await self._row(
            "SELECT tenant_id FROM run_index WHERE execution_id = %s", (execution_id,)
        )
        return None if row is None else str(row[0])

    async def runs_on_version(
        self, workflow: str, version: str, *, tenant_id: str | None = None, limit: int = 10_000
    ) -> list[PinnedRun]:
        """Unfinished runs that run with ``workflow`` ``version`` (as they started, or as an
        operator moved them), oldest first."""
        async with self._db.connection() as conn:
            rows = await (
                await conn.execute(
                    f"SELECT tenant_id, execution_id, session_id, workflow, version FROM ("
                    f"SELECT r.tenant_id, r.execution_id, r.session_id, r.updated_at, "
                    f"{fragments.run_workflow('r')} AS workflow, "
                    f"{fragments.run_version('r')} AS version FROM run_index r "
                    f"WHERE %(tenant)s::text IS NULL OR r.tenant_id = %(tenant)s) AS runs "
                    f"WHERE workflow = %(workflow)s AND version = %(version)s "
                    f"ORDER BY updated_at, execution_id LIMIT %(limit)s",
                    {"tenant": tenant_id, "workflow": workflow, "version": version,
                     "limit": limit},
                )
            ).fetchall()
        return [PinnedRun(*row) for row in rows]

    async def _row(self, query: str, params: Sequence[Any]) -> tuple[Any, ...] | None:
        async with self._db.connection() as conn:
            return await (await conn.execute(query, params)).fetchone()

    # --- the engine ---------------------------------------------------------------------------

    @staticmethod
    async def apply_change(
        conn: Connection,
        *,
        tenant_id: str,
        execution_id: str,
        seen_seq: int,
        change: IndexChange,
    ) -> bool:
        """Apply ``change``; True when a command newer than ``seen_seq`` waits (the run is due).

        The caller holds the session's stream-head lock, so every command committed before it is
        visible to these statements and no command can commit until this transaction ends.
        """
        pending = PendingChange(tenant_id, execution_id, seen_seq, change)
        await RunIndex.apply_changes(conn, [(pending, [])])
        return pending.commands_waiting

    @staticmethod
    async def apply_changes(
        conn: Connection, items: list[tuple[Any, list[StoredEvent]]]
    ) -> None:
        """:meth:`apply_change` for the runs of a group commit (each item a
        :class:`PendingChange`), in at most two statements: one DELETE, one UPDATE. The group's
        append holds every one of their sessions' head locks, as a lone append would.
        :meth:`apply_change` is this with one item."""
        changes: list[PendingChange] = [item for item, _ in items]
        gone = [c for c in changes if c.change.delete]
        if gone:
            await conn.execute(
                "DELETE FROM run_index WHERE (tenant_id, execution_id) IN "
                "(SELECT * FROM unnest(%s::text[], %s::text[]))",
                ([c.tenant_id for c in gone], [c.execution_id for c in gone]),
            )
        kept = [c for c in changes if not c.change.delete]
        if not kept:
            return
        cursor = await conn.execute(
            _APPLY_CHANGES,
            (
                [c.tenant_id for c in kept],
                [c.execution_id for c in kept],
                [c.seen_seq for c in kept],
                [c.change.status for c in kept],
                [_wake_mode(c.change.wake) for c in kept],
                [c.change.wake if isinstance(c.change.wake, datetime) else None for c in kept],
            ),
        )
        waiting = {str(row[0]): bool(row[1]) for row in await cursor.fetchall()}
        for change in kept:
            change.commands_waiting = waiting.get(change.execution_id, False)

    async def change_fenced(
        self,
        fence: Fence,
        *,
        tenant_id: str,
        session_id: str,
        execution_id: str,
        seen_seq: int,
        change: IndexChange,
    ) -> bool:
        """Apply ``change`` with no event (a re-suspension, a timer not yet due, a drain),
        checking the lease and taking the session's head lock first, as an append would."""
        async with self._db.transaction() as conn:
            await check_fence(conn, fence)
            await lock_stream(conn, tenant_id, session_id)
            return await self.apply_change(
                conn,
                tenant_id=tenant_id,
                execution_id=execution_id,
                seen_seq=seen_seq,
                change=change,
            )

    # --- dispatch -----------------------------------------------------------------------------

    async def find_due(
        self,
        shards: Sequence[int],
        *,
        busy: Sequence[str],
        limit: int,
        running: Mapping[str, int] | None = None,
        per_tenant: int | None = None,
    ) -> list[DueRun]:
        """Head runs of ``shards`` that are due now (database time) and not ``busy``, taken in
        turns across tenants: ``running`` (tenant -> runs the caller has in flight) counts
        towards a tenant's turn, and no tenant passes ``per_tenant`` in flight."""
        if not shards or limit <= 0:
            return []
        running = running or {}
        params = {
            "shards": list(shards),
            "busy": list(busy),
            "limit": limit,
            "tenants": list(running),
            "running": list(running.values()),
            "per_tenant": per_tenant if per_tenant is not None else 2**31 - 1,
        }
        async with self._db.connection() as conn:
            rows = await (await conn.execute(_DUE, params)).fetchall()
        return [DueRun(*row) for row in rows]

    async def progress(
        self, shards: Sequence[int], *, busy: Sequence[str]
    ) -> Mapping[int, ShardProgress]:
        """Per shard: the age of its oldest due work no advance handles (not ``busy``), and the
        time to its next timer."""
        if not shards:
            return {}
        async with self._db.connection() as conn:
            return await self.progress_in(conn, shards, busy=busy)

    @staticmethod
    async def progress_in(
        conn: Connection, shards: Sequence[int], *, busy: Sequence[str]
    ) -> Mapping[int, ShardProgress]:
        """:meth:`progress` on the caller's connection (the operations overview's snapshot)."""
        rows = await (
            await conn.execute(_PROGRESS, {"shards": list(shards), "busy": list(busy)})
        ).fetchall()
        found = {row[0]: ShardProgress(row[1], row[2], row[3]) for row in rows}
        return {shard: found.get(shard, ShardProgress(None, None)) for shard in shards}

    @staticmethod
    async def status_counts(conn: Connection) -> dict[str, int]:
        """How many unfinished runs are in each status (``queued``, ``running``, ``suspended``):
        the index holds only runs that have not ended, so this stays as small as the work."""
        rows = await (
            await conn.execute("SELECT status, count(*) FROM run_index GROUP BY status")
        ).fetchall()
        counts = {status: 0 for status in ("queued", "running", "suspended")}
        counts.update({str(row[0]): int(row[1]) for row in rows})
        return counts


__all__ = [
    "WORK_CHANNEL",
    "NewRun",
    "PendingChange",
    "DueRun",
    "IndexChange",
    "RunIndex",
    "ShardProgress",
    "Status",
    "Wake",
]


def _repair_params(runs: Sequence[UnfinishedRun], shards: int) -> dict[str, list[Any]]:
    return {
        "executions": [r.execution_id for r in runs],
        "tenants": [r.tenant_id for r in runs],
        "sessions": [r.session_id for r in runs],
        "runs": [r.run_id for r in runs],
        "shards": [shard_for(r.tenant_id, r.session_id, shards) for r in runs],
        "seqs": [r.accepted_seq for r in runs],
        "statuses": ["running" if r.started else "queued" for r in runs],
        "deadlines": [r.deadline_at for r in runs],
    }
