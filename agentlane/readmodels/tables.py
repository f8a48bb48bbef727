"""The read-model tables (ddl/0020): names, columns, rows to and from fold states, and the table
operations a rebuild needs (fresh copies, locks, an atomic swap).

``read_runs`` (one row per execution: the body of ``GET /runs/{id}``, its cost included),
``read_sessions`` (runs and last event of each session), ``read_usage_daily`` (tokens and cost per
tenant, model and UTC day; ddl/0041 added the cost columns).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from psycopg import sql

from agentlane.db import Connection
from agentlane.folds import RunState, SessionState, Usage

RUNS_TABLE = "read_runs"
SESSIONS_TABLE = "read_sessions"
USAGE_TABLE = "read_usage_daily"
#: Every read-model table; a rebuild recreates exactly these.
READ_MODEL_TABLES = (RUNS_TABLE, SESSIONS_TABLE, USAGE_TABLE)

#: The follower checkpoint (``agentlane.store.Checkpoints``) that says how far the tables got.
READ_MODELS_CHECKPOINT = "read_models"

RUN_COLUMNS = (
    "execution_id", "tenant_id", "session_id", "run_id", "status", "message", "answer", "error",
    "input_tokens", "output_tokens", "cached_input_tokens", "created_at", "updated_at",
    "last_event_id", "last_seq", "cost_micros", "message_ref", "answer_ref",
)
SESSION_COLUMNS = (
    "tenant_id", "session_id", "run_count", "last_execution_id", "last_event_id", "last_seq",
    "last_event_type", "created_at", "last_event_at",
)
USAGE_COLUMNS = (
    "tenant_id", "model", "day", "calls", "input_tokens", "output_tokens", "cached_input_tokens",
    "cost_micros",
)
RUN_KEY = ("execution_id",)
SESSION_KEY = ("tenant_id", "session_id")
USAGE_KEY = ("tenant_id", "model", "day")


@dataclass(frozen=True, slots=True)
class ReadModelTables:
    """Where rows go: the live tables, or a rebuild's new ones."""

    runs: str = RUNS_TABLE
    sessions: str = SESSIONS_TABLE
    usage: str = USAGE_TABLE

    def with_suffix(self, suffix: str) -> ReadModelTables:
        return ReadModelTables(self.runs + suffix, self.sessions + suffix, self.usage + suffix)

    @property
    def names(self) -> tuple[str, str, str]:
        return (self.runs, self.sessions, self.usage)


LIVE_TABLES = ReadModelTables()


def run_to_row(run: RunState) -> tuple[Any, ...]:
    return (
        run.execution_id, run.tenant_id, run.session_id, run.run_id, run.status, run.message,
        run.answer, run.error, run.usage.input_tokens, run.usage.output_tokens,
        run.usage.cached_input_tokens, run.created_at, run.updated_at, run.last_event_id,
        run.last_seq, run.usage.cost_micros, run.message_ref, run.answer_ref,
    )


def run_from_row(row: Sequence[Any]) -> RunState:
    return RunState(
        execution_id=row[0], tenant_id=row[1], session_id=row[2], run_id=row[3], status=row[4],
        message=row[5], answer=row[6], error=row[7],
        usage=Usage(row[8], row[9], row[10], row[15]),
        created_at=row[11], updated_at=row[12], last_event_id=row[13], last_seq=row[14],
        message_ref=row[16], answer_ref=row[17],
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


def columns(names: Sequence[str], alias: str | None = None) -> sql.Composable:
    """``a, b, c`` (or ``t.a, t.b, t.c``) as identifiers."""
    return sql.SQL(", ").join(
        sql.Identifier(alias, name) if alias else sql.Identifier(name) for name in names
    )


# --- a rebuild's table operations ----------------------------------------------------------------


async def create_empty(conn: Connection, new: ReadModelTables) -> None:
    """Fresh, empty copies of the live tables (indexes included) under ``new``'s names."""
    for live, fresh in zip(LIVE_TABLES.names, new.names, strict=True):
        await conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(fresh)))
        await conn.execute(
            sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING ALL)").format(
                sql.Identifier(fresh), sql.Identifier(live)
            )
        )


async def lock_live(conn: Connection) -> None:
    """Inside a transaction: no reader or writer touches the live tables until it ends."""
    await conn.execute(
        sql.SQL("LOCK TABLE {}, {}, {} IN ACCESS EXCLUSIVE MODE").format(
            *map(sql.Identifier, LIVE_TABLES.names)
        )
    )


async def swap_in(conn: Connection, new: ReadModelTables) -> None:
    """Inside a transaction: ``new``'s tables become the live ones (by renaming)."""
    for fresh, current in zip(new.names, LIVE_TABLES.names, strict=True):
        old = sql.Identifier(current + "_old")
        await conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(old))
        await conn.execute(
            sql.SQL("ALTER TABLE {} RENAME TO {}").format(sql.Identifier(current), old)
        )
        await conn.execute(
            sql.SQL("ALTER TABLE {} RENAME TO {}").format(
                sql.Identifier(fresh), sql.Identifier(current)
            )
        )
        await conn.execute(sql.SQL("DROP TABLE {}").format(old))
