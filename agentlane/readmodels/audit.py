"""The audit's reads of the read models, inside its snapshot (:mod:`agentlane.store.audit`).

``replay verify`` folds the events itself and compares; these are the rows it compares with, and
the rows no event accounts for.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from psycopg import sql

from agentlane.readmodels.tables import (
    RUN_COLUMNS,
    RUNS_TABLE,
    SESSION_COLUMNS,
    SESSIONS_TABLE,
    USAGE_COLUMNS,
    USAGE_TABLE,
    columns,
)
from agentlane.store import fragments
from agentlane.store.audit import Snapshot, stream_rows


def existing_tables(conn: Snapshot) -> set[str]:
    """The names of the read-model tables (``read_*``) this database has."""
    return {
        row[0]
        for row in conn.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema() AND table_name LIKE 'read\\_%%'"
        )
    }


def runs_by_id(conn: Snapshot, execution_ids: Sequence[str]) -> dict[str, tuple[Any, ...]]:
    """The ``read_runs`` rows of these runs (without the id), by execution id."""
    query = sql.SQL("SELECT {} FROM {} WHERE execution_id = ANY(%s)").format(
        columns(RUN_COLUMNS), sql.Identifier(RUNS_TABLE)
    )
    return {row[0]: row[1:] for row in conn.execute(query, (list(execution_ids),))}


def sessions_by_key(
    conn: Snapshot, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], tuple[Any, ...]]:
    """The ``read_sessions`` rows of these streams (without the key), by ``(tenant, session)``."""
    query = sql.SQL(
        "SELECT {} FROM unnest(%s::text[], %s::text[]) AS k(tenant_id, session_id) "
        "JOIN {} s USING (tenant_id, session_id)"
    ).format(columns(SESSION_COLUMNS, "s"), sql.Identifier(SESSIONS_TABLE))
    params = ([k[0] for k in keys], [k[1] for k in keys])
    return {(row[0], row[1]): row[2:] for row in conn.execute(query, params)}


def orphan_runs(conn: Snapshot, tenant_id: str | None) -> Iterator[tuple[str, str, str]]:
    """``(tenant, session, execution)`` of ``read_runs`` rows no event names."""
    query = (
        f"SELECT r.tenant_id, r.session_id, r.execution_id FROM {RUNS_TABLE} r "
        f"WHERE NOT {fragments.run_has_events('r')}"
    )
    yield from _tenant_rows(conn, query, "r", tenant_id, "replay_orphan_runs")


def orphan_sessions(conn: Snapshot, tenant_id: str | None) -> Iterator[tuple[str, str]]:
    """``(tenant, session)`` of ``read_sessions`` rows whose stream has no events."""
    query = (
        f"SELECT s.tenant_id, s.session_id FROM {SESSIONS_TABLE} s "
        f"WHERE NOT {fragments.session_has_events('s')}"
    )
    yield from _tenant_rows(conn, query, "s", tenant_id, "replay_orphan_sessions")


def usage_rows(conn: Snapshot, tenant_id: str | None) -> Iterator[tuple[Any, ...]]:
    """Every ``read_usage_daily`` row (of one tenant when given)."""
    query = sql.SQL("SELECT {} FROM {}").format(
        columns(USAGE_COLUMNS), sql.Identifier(USAGE_TABLE)
    )
    params: list[Any] = []
    if tenant_id is not None:
        query += sql.SQL(" WHERE tenant_id = %s")
        params.append(tenant_id)
    yield from stream_rows(conn, query, params, name="replay_usage")


def _tenant_rows(
    conn: Snapshot, query: str, alias: str, tenant_id: str | None, name: str
) -> Iterator[Any]:
    params: list[Any] = []
    if tenant_id is not None:
        query += f" AND {alias}.tenant_id = %s"
        params.append(tenant_id)
    yield from stream_rows(conn, query, params, name=name)
