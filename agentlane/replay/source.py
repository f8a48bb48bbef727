"""Streaming reads of ``agent_events`` for the audit CLI: one snapshot, server-side cursors.

Everything a command reads comes from one read-only REPEATABLE READ transaction, so events, stream
heads and read models are compared at the same instant even while the system writes. Rows arrive
through named (server-side) cursors ``itersize`` at a time: memory does not grow with the table.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import tuple_row

from agentlane.db import translate_errors

#: Rows fetched per round trip of a server-side cursor.
ITERSIZE = 5000

EVENT_COLUMNS = (
    "event_id, seq, tenant_id, session_id, execution_id, event_type, payload, created_at"
)

#: The order every streaming read uses: a stream's rows are contiguous and in ``seq`` order.
STREAM_ORDER = "tenant_id, session_id, seq"


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events a command looks at; ``None`` means no restriction."""

    tenant_id: str | None = None
    session_id: str | None = None
    execution_id: str | None = None
    since: datetime | None = None
    until_event_id: int | None = None
    #: A range of streams, ``from_stream <= (tenant, session) < to_stream`` (a worker's share).
    from_stream: tuple[str, str] | None = None
    to_stream: tuple[str, str] | None = None

    def where(self) -> tuple[sql.Composed, list[Any]]:
        """A ``WHERE`` clause (or nothing) and its parameters."""
        clauses: list[sql.Composable] = []
        params: list[Any] = []
        for column, value, operator in (
            ("tenant_id", self.tenant_id, "="),
            ("session_id", self.session_id, "="),
            ("execution_id", self.execution_id, "="),
            ("created_at", self.since, ">="),
            ("event_id", self.until_event_id, "<="),
        ):
            if value is not None:
                clauses.append(
                    sql.SQL("{} {} %s").format(sql.Identifier(column), sql.SQL(operator))
                )
                params.append(value)
        for bound, operator in ((self.from_stream, ">="), (self.to_stream, "<")):
            if bound is not None:
                clauses.append(
                    sql.SQL("(tenant_id, session_id) {} (%s, %s)").format(sql.SQL(operator))
                )
                params.extend(bound)
        if not clauses:
            return sql.Composed([]), params
        return sql.SQL(" WHERE ") + sql.SQL(" AND ").join(clauses), params


@contextlib.contextmanager
def snapshot(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    """A connection inside one read-only REPEATABLE READ transaction."""
    with translate_errors():
        conn = psycopg.connect(database_url, application_name="agentlane-replay")
    with conn:
        with translate_errors():
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
        with conn.transaction():
            # A read-only snapshot takes no transaction id, so it does not hold back the gap-safe
            # tail's horizon; the database-wide idle limit (ddl/0021) is for writers. Waiting on
            # worker processes (parallel verify) leaves this one idle for minutes.
            with translate_errors():
                conn.execute("SET LOCAL idle_in_transaction_session_timeout = 0")
            yield conn


def stream_rows(
    conn: psycopg.Connection[Any],
    query: sql.Composed | str,
    params: Sequence[Any] = (),
    *,
    name: str = "replay",
    itersize: int = ITERSIZE,
) -> Iterator[tuple[Any, ...]]:
    """Rows of ``query`` through a server-side cursor (binary: no text parsing of bytea/jsonb)."""
    with conn.cursor(name=name, row_factory=tuple_row, binary=True) as cursor:
        cursor.itersize = itersize
        cursor.execute(query, params)
        yield from cursor


def events_query(
    columns: str, where: EventFilter, *, column_params: Iterable[Any] = ()
) -> tuple[sql.Composed, list[Any]]:
    """``SELECT columns FROM agent_events WHERE … ORDER BY tenant, session, seq``.

    ``columns`` is one of this package's constant column lists, never user input;
    ``column_params`` are the parameters of placeholders in ``columns`` (they come first).
    """
    clause, params = where.where()
    query = (
        sql.SQL("SELECT ")
        + sql.SQL(columns)
        + sql.SQL(" FROM agent_events")
        + clause
        + sql.SQL(" ORDER BY " + STREAM_ORDER)
    )
    return query, [*column_params, *params]


def count_events(conn: psycopg.Connection[Any], where: EventFilter) -> int:
    """How many events match (for a progress bar's total)."""
    clause, params = where.where()
    row = conn.execute(
        sql.SQL("SELECT count(*) FROM agent_events") + clause, params
    ).fetchone()
    return int(row[0]) if row else 0
