"""The CQRS read models the projector keeps, and the queries other components use on them.

Tables (ddl/0020): ``read_runs`` (one row per execution: the body of ``GET /runs/{id}``),
``read_sessions`` (runs and last event of each session), ``read_usage_daily`` (tokens per tenant,
model and UTC day). They lag the event store by the projector's lag: ``get_run`` returns the run as
of ``RunState.last_seq`` of its session, and :func:`session_position` / :func:`projector_position`
tell a reader how far the read models have got. Every query filters by tenant.

``conn`` is an open connection or a pool (a connection is borrowed for the query).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import psycopg
from psycopg.rows import tuple_row
from psycopg_pool import AsyncConnectionPool

from agentlane.db import translate_errors
from agentlane.folds import RunState, SessionState, Usage, UsageKey, UsageTotals
from agentlane.records import Checkpoint

RUNS_TABLE = "read_runs"
SESSIONS_TABLE = "read_sessions"
USAGE_TABLE = "read_usage_daily"
#: Every read-model table; ``projector.rebuild_read_models`` recreates exactly these.
READ_MODEL_TABLES = (RUNS_TABLE, SESSIONS_TABLE, USAGE_TABLE)

CHECKPOINTS_TABLE = "projector_checkpoints"
#: Checkpoint names in ``projector_checkpoints``.
READ_MODELS_CHECKPOINT = "read_models"
PUBLISH_CHECKPOINT = "publish"

RUN_COLUMNS = (
    "execution_id", "tenant_id", "session_id", "run_id", "status", "message", "answer", "error",
    "input_tokens", "output_tokens", "cached_input_tokens", "created_at", "updated_at",
    "last_event_id", "last_seq",
)
SESSION_COLUMNS = (
    "tenant_id", "session_id", "run_count", "last_execution_id", "last_event_id", "last_seq",
    "last_event_type", "created_at", "last_event_at",
)
USAGE_COLUMNS = (
    "tenant_id", "model", "day", "calls", "input_tokens", "output_tokens", "cached_input_tokens",
)

Connectable = psycopg.AsyncConnection[Any] | AsyncConnectionPool


def run_to_row(run: RunState) -> tuple[Any, ...]:
    return (
        run.execution_id, run.tenant_id, run.session_id, run.run_id, run.status, run.message,
        run.answer, run.error, run.usage.input_tokens, run.usage.output_tokens,
        run.usage.cached_input_tokens, run.created_at, run.updated_at, run.last_event_id,
        run.last_seq,
    )


def run_from_row(row: Sequence[Any]) -> RunState:
    return RunState(
        execution_id=row[0], tenant_id=row[1], session_id=row[2], run_id=row[3], status=row[4],
        message=row[5], answer=row[6], error=row[7], usage=Usage(row[8], row[9], row[10]),
        created_at=row[11], updated_at=row[12], last_event_id=row[13], last_seq=row[14],
    )


def session_to_row(session: SessionState) -> tuple[Any, ...]:
    return (
        session.tenant_id, session.session_id, session.run_count, session.last_execution_id,
        session.last_event_id, session.last_seq, session.last_event_type, session.created_at,
        session.last_event_at,
    )


def session_from_row(row: Sequence[Any]) -> SessionState:
    return SessionState(
        tenant_id=row[0], session_id=row[1], run_count=row[2], last_execution_id=row[3],
        last_event_id=row[4], last_seq=row[5], last_event_type=row[6], created_at=row[7],
        last_event_at=row[8],
    )


@contextlib.asynccontextmanager
async def _connection(conn: Connectable) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    if isinstance(conn, AsyncConnectionPool):
        async with conn.connection() as borrowed:
            yield borrowed
    else:
        yield conn


async def _rows(conn: Connectable, query: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    async with _connection(conn) as c:
        with translate_errors():
            cursor = c.cursor(row_factory=tuple_row)
            await cursor.execute(query, params)
            return await cursor.fetchall()


async def get_run(conn: Connectable, tenant_id: str, execution_id: str) -> RunState | None:
    """The run as the read model has it, or None (unknown, another tenant's, or not yet
    projected: a caller that must never 404 an accepted run folds its events instead)."""
    rows = await _rows(
        conn,
        f"SELECT {', '.join(RUN_COLUMNS)} FROM {RUNS_TABLE} "
        "WHERE execution_id = %s AND tenant_id = %s",
        (execution_id, tenant_id),
    )
    return run_from_row(rows[0]) if rows else None


async def list_session_runs(
    conn: Connectable, tenant_id: str, session_id: str, *, limit: int = 100
) -> list[RunState]:
    """A session's runs, oldest first."""
    rows = await _rows(
        conn,
        f"SELECT {', '.join(RUN_COLUMNS)} FROM {RUNS_TABLE} "
        "WHERE tenant_id = %s AND session_id = %s ORDER BY created_at, execution_id LIMIT %s",
        (tenant_id, session_id, limit),
    )
    return [run_from_row(row) for row in rows]


async def get_session(conn: Connectable, tenant_id: str, session_id: str) -> SessionState | None:
    rows = await _rows(
        conn,
        f"SELECT {', '.join(SESSION_COLUMNS)} FROM {SESSIONS_TABLE} "
        "WHERE tenant_id = %s AND session_id = %s",
        (tenant_id, session_id),
    )
    return session_from_row(rows[0]) if rows else None


async def session_position(conn: Connectable, tenant_id: str, session_id: str) -> int:
    """The last ``seq`` of this session the read models include (0: none yet)."""
    rows = await _rows(
        conn,
        f"SELECT last_seq FROM {SESSIONS_TABLE} WHERE tenant_id = %s AND session_id = %s",
        (tenant_id, session_id),
    )
    return int(rows[0][0]) if rows else 0


async def get_usage(
    conn: Connectable,
    tenant_id: str,
    *,
    since: date | None = None,
    until: date | None = None,
) -> dict[UsageKey, UsageTotals]:
    """Usage per model and day for one tenant, ``since <= day <= until`` when given."""
    rows = await _rows(
        conn,
        f"SELECT {', '.join(USAGE_COLUMNS)} FROM {USAGE_TABLE} WHERE tenant_id = %s "
        "AND day >= coalesce(%s::date, '-infinity'::date) "
        "AND day <= coalesce(%s::date, 'infinity'::date) ORDER BY day, model",
        (tenant_id, since, until),
    )
    return {
        UsageKey(row[0], row[1], row[2]): UsageTotals(row[3], row[4], row[5], row[6])
        for row in rows
    }


@dataclass(frozen=True, slots=True)
class ProjectorPosition:
    """How far one projector checkpoint has got, and how far behind the event store it is."""

    name: str
    checkpoint: Checkpoint
    updated_at: datetime
    #: Committed events after the checkpoint (counted up to ``lag_cap``).
    lag_events: int
    #: Age of the oldest such event by the database clock (0 when caught up).
    lag_s: float


async def projector_position(
    conn: Connectable, name: str = READ_MODELS_CHECKPOINT, *, lag_cap: int = 1_000_000
) -> ProjectorPosition:
    """The ``read_models`` (or ``publish``) checkpoint and its lag."""
    rows = await _rows(
        conn,
        f"""
        SELECT c.tx_id, c.event_id, c.updated_at,
               (SELECT count(*) FROM (
                    SELECT 1 FROM agent_events e
                    WHERE (e.tx_id, e.event_id) > (c.tx_id::text::xid8, c.event_id)
                    LIMIT %s) pending),
               coalesce((SELECT extract(epoch FROM now() - min(e.created_at))
                         FROM (SELECT created_at FROM agent_events
                               WHERE (tx_id, event_id) > (c.tx_id::text::xid8, c.event_id)
                               ORDER BY tx_id, event_id LIMIT 1000) e), 0)
        FROM {CHECKPOINTS_TABLE} c WHERE c.name = %s
        """,
        (lag_cap, name),
    )
    if not rows:
        raise LookupError(f"no projector checkpoint named {name!r}")
    tx_id, event_id, updated_at, lag_events, lag_s = rows[0]
    return ProjectorPosition(
        name=name,
        checkpoint=Checkpoint(int(tx_id), int(event_id)),
        updated_at=updated_at,
        lag_events=int(lag_events),
        lag_s=max(0.0, float(lag_s)),
    )


__all__ = [
    "CHECKPOINTS_TABLE",
    "PUBLISH_CHECKPOINT",
    "READ_MODELS_CHECKPOINT",
    "READ_MODEL_TABLES",
    "RUNS_TABLE",
    "RUN_COLUMNS",
    "SESSIONS_TABLE",
    "SESSION_COLUMNS",
    "USAGE_COLUMNS",
    "USAGE_TABLE",
    "Connectable",
    "ProjectorPosition",
    "get_run",
    "get_session",
    "get_usage",
    "list_session_runs",
    "projector_position",
    "run_from_row",
    "run_to_row",
    "session_from_row",
    "session_position",
    "session_to_row",
]
