"""The projection: a batch of events folded into the read-model tables, in the caller's transaction.

Each session is folded strictly in ``seq`` order from the ``last_seq`` its ``read_sessions`` row
records (see :mod:`agentlane.store.ordering`), with the pure folds of :mod:`agentlane.folds`, so the
tables equal a fresh fold of the events whatever order the tail delivered them in.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from psycopg import sql
from psycopg.rows import tuple_row
from psycopg.types.json import Jsonb

from agentlane.db import Connection
from agentlane.folds import RunFold, RunState, SessionFold, SessionState, fold_usage
from agentlane.readmodels.tables import (
    LIVE_TABLES,
    RUN_COLUMNS,
    RUN_KEY,
    SESSION_COLUMNS,
    SESSION_KEY,
    USAGE_COLUMNS,
    USAGE_KEY,
    ReadModelTables,
    columns,
    run_from_row,
    run_to_row,
    session_from_row,
    session_to_row,
)
from agentlane.records import StoredEvent
from agentlane.store import EventStore
from agentlane.store.ordering import SessionKey, in_seq_order

_RUN_TYPES = (
    "text", "text", "text", "text", "text", "text", "text", "text", "bigint", "bigint", "bigint",
    "timestamptz", "timestamptz", "bigint", "bigint", "bigint", "jsonb", "jsonb",
)
_SESSION_TYPES = (
    "text", "text", "integer", "text", "bigint", "bigint", "text", "timestamptz", "timestamptz",
)
_USAGE_TYPES = ("text", "text", "date", "bigint", "bigint", "bigint", "bigint", "bigint")


def _unnest(types: Sequence[str]) -> sql.Composable:
    return sql.SQL(", ").join(sql.SQL("%s::{}[]").format(sql.SQL(t)) for t in types)


def _upsert(table: str, names: Sequence[str], types: Sequence[str], key: Sequence[str],
            update: sql.Composable) -> sql.Composed:
    return sql.SQL(
        "INSERT INTO {table} AS t ({cols}) SELECT * FROM unnest({arrays}) "
        "ON CONFLICT ({key}) DO UPDATE SET {update}"
    ).format(table=sql.Identifier(table), cols=columns(names), arrays=_unnest(types),
             key=columns(key), update=update)


def _replace_all(names: Sequence[str], key: Sequence[str]) -> sql.Composable:
    return sql.SQL(", ").join(
        sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(c)) for c in names if c not in key
    )


def _add_all(names: Sequence[str], key: Sequence[str]) -> sql.Composable:
    return sql.SQL(", ").join(
        sql.SQL("{c} = t.{c} + EXCLUDED.{c}").format(c=sql.Identifier(c))
        for c in names if c not in key
    )


@dataclass(frozen=True, slots=True)
class _Statements:
    """The projection's statements for one set of tables, composed once (as text, so psycopg's
    own query cache and prepared statements apply to them)."""

    sessions: str
    runs: str
    upsert_runs: str
    upsert_sessions: str
    upsert_usage: str


@functools.cache
def _statements(tables: ReadModelTables) -> _Statements:
    def text(query: sql.Composable) -> str:
        return query.as_string(None)

    return _Statements(
        sessions=text(
            sql.SQL(
                "SELECT {cols} FROM {table} s JOIN unnest(%s::text[], %s::text[]) AS k(t, id) "
                "ON s.tenant_id = k.t AND s.session_id = k.id"
            ).format(cols=columns(SESSION_COLUMNS, "s"), table=sql.Identifier(tables.sessions))
        ),
        runs=text(
            sql.SQL("SELECT {cols} FROM {table} WHERE execution_id = ANY(%s)").format(
                cols=columns(RUN_COLUMNS), table=sql.Identifier(tables.runs)
            )
        ),
        upsert_runs=text(
            _upsert(tables.runs, RUN_COLUMNS, _RUN_TYPES, RUN_KEY,
                    _replace_all(RUN_COLUMNS, RUN_KEY))
        ),
        upsert_sessions=text(
            _upsert(tables.sessions, SESSION_COLUMNS, _SESSION_TYPES, SESSION_KEY,
                    _replace_all(SESSION_COLUMNS, SESSION_KEY))
        ),
        upsert_usage=text(
            _upsert(tables.usage, USAGE_COLUMNS, _USAGE_TYPES, USAGE_KEY,
                    _add_all(USAGE_COLUMNS, USAGE_KEY))
        ),
    )


def _storable_run_row(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A run's row with its blob references (dicts, the last two columns) adapted as jsonb."""
    *head, message_ref, answer_ref = row
    return (*head, *(None if ref is None else Jsonb(ref) for ref in (message_ref, answer_ref)))


def _transpose(rows: list[tuple[Any, ...]], width: int) -> list[list[Any]]:
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[]] * width


async def apply_events(
    conn: Connection,
    store: EventStore,
    events: Sequence[StoredEvent],
    tables: ReadModelTables = LIVE_TABLES,
) -> int:
    """Fold ``events`` (any order, repeats allowed) into the read models; returns how many were
    applied (events at or below a session's ``last_seq`` are already in and are skipped; a gap
    below a delivered ``seq`` is read from ``store``)."""
    if not events:
        return 0
    statements = _statements(tables)
    cursor = conn.cursor(row_factory=tuple_row)
    keys = sorted({(e.tenant_id, e.session_id) for e in events})
    await cursor.execute(statements.sessions, ([k[0] for k in keys], [k[1] for k in keys]))
    sessions: dict[SessionKey, SessionState] = {
        (s.tenant_id, s.session_id): s for s in map(session_from_row, await cursor.fetchall())
    }
    ordered = await in_seq_order(
        store, events, {key: state.last_seq for key, state in sessions.items()}
    )
    applied = [event for stream in ordered.values() for event in stream]
    if not applied:
        return 0

    execution_ids = sorted({e.execution_id for e in applied if e.execution_id})
    runs: dict[str, RunState] = {}
    if execution_ids:
        await cursor.execute(statements.runs, (execution_ids,))
        runs = {r.execution_id: r for r in map(run_from_row, await cursor.fetchall())}

    # Mutable folds resumed from the rows (one RunState per run, not one per event: most events
    # move nothing but a position); the same meaning as apply_run/apply_session, property-tested.
    run_folds: dict[str, RunFold] = {}
    for key, stream in ordered.items():
        session = SessionFold.resume(sessions.get(key))
        for event in stream:
            session.feed(event)
            execution = event.execution_id
            if execution:
                fold = run_folds.get(execution)
                if fold is None:
                    fold = run_folds[execution] = RunFold.resume(runs.get(execution))
                fold.feed(event)
        state = session.state()
        assert state is not None
        sessions[key] = state

    run_rows = [
        _storable_run_row(run_to_row(run))
        for execution in sorted(run_folds)
        if (run := run_folds[execution].state()) is not None
    ]
    session_rows = [session_to_row(sessions[key]) for key in ordered]
    usage_rows = [
        (k.tenant_id, k.model, k.day, u.calls, u.input_tokens, u.output_tokens,
         u.cached_input_tokens, u.cost_micros)
        for k, u in sorted(fold_usage(applied).items())
    ]
    if run_rows:
        await cursor.execute(statements.upsert_runs, _transpose(run_rows, len(RUN_COLUMNS)))
    await cursor.execute(
        statements.upsert_sessions, _transpose(session_rows, len(SESSION_COLUMNS))
    )
    if usage_rows:
        await cursor.execute(
            statements.upsert_usage, _transpose(usage_rows, len(USAGE_COLUMNS))
        )
    return len(applied)
