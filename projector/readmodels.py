"""Apply a batch of tailed events to the read-model tables (inside the caller's transaction).

Each session is folded strictly in ``seq`` order from the ``last_seq`` its ``read_sessions`` row
records (see agentlane.bus.ordering), with the pure folds of agentlane.folds, so the tables equal a
fresh fold of the events whatever order the tail delivered them in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import tuple_row

from agentlane.bus.ordering import SessionKey, in_seq_order
from agentlane.folds import RunState, SessionState, apply_run, apply_session, fold_usage
from agentlane.readmodel import (
    RUN_COLUMNS,
    RUNS_TABLE,
    SESSION_COLUMNS,
    SESSIONS_TABLE,
    USAGE_COLUMNS,
    USAGE_TABLE,
    run_from_row,
    run_to_row,
    session_from_row,
    session_to_row,
)
from agentlane.records import StoredEvent

_RUN_TYPES = (
    "text", "text", "text", "text", "text", "text", "text", "text", "bigint", "bigint", "bigint",
    "timestamptz", "timestamptz", "bigint", "bigint",
)
_SESSION_TYPES = (
    "text", "text", "integer", "text", "bigint", "bigint", "text", "timestamptz", "timestamptz",
)
_USAGE_TYPES = ("text", "text", "date", "bigint", "bigint", "bigint", "bigint")


@dataclass(frozen=True, slots=True)
class ReadModelTables:
    """Where a batch goes: the live tables, or a rebuild's new ones."""

    runs: str = RUNS_TABLE
    sessions: str = SESSIONS_TABLE
    usage: str = USAGE_TABLE

    def with_suffix(self, suffix: str) -> ReadModelTables:
        return ReadModelTables(self.runs + suffix, self.sessions + suffix, self.usage + suffix)


LIVE_TABLES = ReadModelTables()


def _cols(names: Sequence[str]) -> sql.Composable:
    return sql.SQL(", ").join(sql.Identifier(n) for n in names)


def _unnest(types: Sequence[str]) -> sql.Composable:
    return sql.SQL(", ").join(sql.SQL("%s::{}[]").format(sql.SQL(t)) for t in types)


def _upsert(table: str, columns: Sequence[str], types: Sequence[str], key: Sequence[str],
            update: sql.Composable) -> sql.Composed:
    return sql.SQL(
        "INSERT INTO {table} AS t ({cols}) SELECT * FROM unnest({arrays}) "
        "ON CONFLICT ({key}) DO UPDATE SET {update}"
    ).format(table=sql.Identifier(table), cols=_cols(columns), arrays=_unnest(types),
             key=_cols(key), update=update)


def _replace_all(columns: Sequence[str], key: Sequence[str]) -> sql.Composable:
    return sql.SQL(", ").join(
        sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(c)) for c in columns if c not in key
    )


def _add_all(columns: Sequence[str], key: Sequence[str]) -> sql.Composable:
    return sql.SQL(", ").join(
        sql.SQL("{c} = t.{c} + EXCLUDED.{c}").format(c=sql.Identifier(c))
        for c in columns if c not in key
    )


def _transpose(rows: list[tuple[Any, ...]], width: int) -> list[list[Any]]:
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[]] * width


async def apply_events(
    conn: psycopg.AsyncConnection[Any],
    events: Sequence[StoredEvent],
    tables: ReadModelTables = LIVE_TABLES,
) -> int:
    """Fold ``events`` (any order, repeats allowed) into the read models; returns how many were
    applied (events at or below a session's ``last_seq`` are already in and are skipped)."""
    if not events:
        return 0
    cursor = conn.cursor(row_factory=tuple_row)
    keys = sorted({(e.tenant_id, e.session_id) for e in events})
    await cursor.execute(
        sql.SQL(
            "SELECT {cols} FROM {table} s JOIN unnest(%s::text[], %s::text[]) AS k(t, id) "
            "ON s.tenant_id = k.t AND s.session_id = k.id"
        ).format(
            cols=sql.SQL(", ").join(sql.SQL("s.") + sql.Identifier(c) for c in SESSION_COLUMNS),
            table=sql.Identifier(tables.sessions),
        ),
        ([k[0] for k in keys], [k[1] for k in keys]),
    )
    sessions: dict[SessionKey, SessionState] = {
        (s.tenant_id, s.session_id): s for s in map(session_from_row, await cursor.fetchall())
    }
    ordered = await in_seq_order(
        conn, events, {key: state.last_seq for key, state in sessions.items()}
    )
    applied = [event for stream in ordered.values() for event in stream]
    if not applied:
        return 0

    execution_ids = sorted({e.execution_id for e in applied if e.execution_id})
    runs: dict[str, RunState | None] = {}
    if execution_ids:
        await cursor.execute(
            sql.SQL("SELECT {cols} FROM {table} WHERE execution_id = ANY(%s)").format(
                cols=_cols(RUN_COLUMNS), table=sql.Identifier(tables.runs)
            ),
            (execution_ids,),
        )
        runs = {r.execution_id: r for r in map(run_from_row, await cursor.fetchall())}

    changed_runs: set[str] = set()
    for key, stream in ordered.items():
        state = sessions.get(key)
        for event in stream:
            state = apply_session(state, event)
            if event.execution_id:
                folded = apply_run(runs.get(event.execution_id), event)
                if folded is not None:
                    runs[event.execution_id] = folded
                    changed_runs.add(event.execution_id)
        assert state is not None
        sessions[key] = state

    run_rows = [run_to_row(r) for e in sorted(changed_runs) if (r := runs[e]) is not None]
    session_rows = [session_to_row(sessions[key]) for key in ordered]
    usage_rows = [
        (k.tenant_id, k.model, k.day, u.calls, u.input_tokens, u.output_tokens,
         u.cached_input_tokens)
        for k, u in sorted(fold_usage(applied).items())
    ]
    if run_rows:
        run_key = ("execution_id",)
        await cursor.execute(
            _upsert(tables.runs, RUN_COLUMNS, _RUN_TYPES, run_key,
                    _replace_all(RUN_COLUMNS, run_key)),
            _transpose(run_rows, len(RUN_COLUMNS)),
        )
    session_key = ("tenant_id", "session_id")
    await cursor.execute(
        _upsert(tables.sessions, SESSION_COLUMNS, _SESSION_TYPES, session_key,
                _replace_all(SESSION_COLUMNS, session_key)),
        _transpose(session_rows, len(SESSION_COLUMNS)),
    )
    if usage_rows:
        usage_key = ("tenant_id", "model", "day")
        await cursor.execute(
            _upsert(tables.usage, USAGE_COLUMNS, _USAGE_TYPES, usage_key,
                    _add_all(USAGE_COLUMNS, usage_key)),
            _transpose(usage_rows, len(USAGE_COLUMNS)),
        )
    return len(applied)
