"""Reads of the read models, tenant-scoped: what the command API and operators look up.

The tables lag the log by the projector's lag: a row is as of its ``last_seq``. A caller that must
never answer stale (``GET /runs/{id}``) uses :meth:`ReadModels.fresh_run`, which says whether the
row has seen every event of its run, and folds the events itself otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from psycopg import sql

from agentlane.db import Connection, Database
from agentlane.errors import SchemaMissing
from agentlane.folds import RunState, SessionState, Usage, UsageKey, UsageTotals
from agentlane.readmodels.tables import (
    RUN_COLUMNS,
    RUNS_TABLE,
    SESSION_COLUMNS,
    SESSIONS_TABLE,
    USAGE_COLUMNS,
    USAGE_TABLE,
    columns,
    run_from_row,
    session_from_row,
)
from agentlane.store import fragments

# One round trip: the row and whether it has seen every event of its run.
_FRESH_RUN = sql.SQL(
    "SELECT {cols}, NOT " + fragments.run_has_events_after_last_seq("r") + " "
    "FROM {table} r WHERE r.tenant_id = %s AND r.execution_id = %s"
).format(cols=columns(RUN_COLUMNS, "r"), table=sql.Identifier(RUNS_TABLE))


class ReadModels:
    """Reads of ``read_runs``, ``read_sessions`` and ``read_usage_daily`` through ``db``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def exist(self) -> bool:
        """True when this database has the read-model tables (it is migrated that far)."""
        rows = await self._rows(sql.SQL("SELECT to_regclass(%s) IS NOT NULL"), (RUNS_TABLE,))
        return bool(rows and rows[0][0])

    async def get_run(self, tenant_id: str, execution_id: str) -> RunState | None:
        """The run as the read model has it, or None (unknown, another tenant's, or not yet
        projected)."""
        rows = await self._rows(
            sql.SQL("SELECT {} FROM {} WHERE execution_id = %s AND tenant_id = %s").format(
                columns(RUN_COLUMNS), sql.Identifier(RUNS_TABLE)
            ),
            (execution_id, tenant_id),
        )
        return run_from_row(rows[0]) if rows else None

    async def fresh_run(self, tenant_id: str, execution_id: str) -> RunState | None:
        """The run's row if it has seen every event of the run; None when there is no such row,
        it lags, or the tables are being swapped by a rebuild (a caller then folds the events)."""
        try:
            rows = await self._rows(_FRESH_RUN, (tenant_id, execution_id))
        except SchemaMissing:
            return None  # `replay rebuild` swaps the tables; folding is always correct meanwhile
        if not rows or not rows[0][-1]:
            return None
        return run_from_row(rows[0][:-1])

    async def list_session_runs(
        self, tenant_id: str, session_id: str, *, limit: int = 100
    ) -> list[RunState]:
        """A session's runs, oldest first."""
        rows = await self._rows(
            sql.SQL(
                "SELECT {} FROM {} WHERE tenant_id = %s AND session_id = %s "
                "ORDER BY created_at, execution_id LIMIT %s"
            ).format(columns(RUN_COLUMNS), sql.Identifier(RUNS_TABLE)),
            (tenant_id, session_id, limit),
        )
        return [run_from_row(row) for row in rows]

    async def get_session(self, tenant_id: str, session_id: str) -> SessionState | None:
        rows = await self._rows(
            sql.SQL("SELECT {} FROM {} WHERE tenant_id = %s AND session_id = %s").format(
                columns(SESSION_COLUMNS), sql.Identifier(SESSIONS_TABLE)
            ),
            (tenant_id, session_id),
        )
        return session_from_row(rows[0]) if rows else None

    async def session_position(self, tenant_id: str, session_id: str) -> int:
        """The last ``seq`` of this session the read models include (0: none yet)."""
        session = await self.get_session(tenant_id, session_id)
        return session.last_seq if session is not None else 0

    async def get_usage(
        self, tenant_id: str, *, since: date | None = None, until: date | None = None
    ) -> dict[UsageKey, UsageTotals]:
        """Usage per model and day for one tenant, ``since <= day <= until`` when given."""
        rows = await self._rows(
            sql.SQL(
                "SELECT {} FROM {} WHERE tenant_id = %s "
                "AND day >= coalesce(%s::date, '-infinity'::date) "
                "AND day <= coalesce(%s::date, 'infinity'::date) ORDER BY day, model"
            ).format(columns(USAGE_COLUMNS), sql.Identifier(USAGE_TABLE)),
            (tenant_id, since, until),
        )
        return {
            UsageKey(row[0], row[1], row[2]): UsageTotals(*row[3:])
            for row in rows
        }

    @staticmethod
    async def usage_since(
        conn: Connection, since: date, *, limit: int
    ) -> list[tuple[UsageKey, UsageTotals]]:
        """Every tenant's usage per model and UTC day from ``since`` on: up to ``limit + 1`` rows
        (a caller that gets more than ``limit`` knows it cut), newest day first and the costliest
        first within a day. For operators (the operations overview): it spans tenants."""
        rows = await (
            await conn.execute(
                sql.SQL(
                    "SELECT {cols} FROM {table} WHERE day >= %s "
                    "ORDER BY day DESC, cost_micros DESC, input_tokens + output_tokens DESC, "
                    "tenant_id, model LIMIT %s"
                ).format(cols=columns(USAGE_COLUMNS), table=sql.Identifier(USAGE_TABLE)),
                (since, limit + 1),
            )
        ).fetchall()
        return [(UsageKey(row[0], row[1], row[2]), UsageTotals(*row[3:])) for row in rows]

    async def session_usage(self, tenant_id: str, session_id: str) -> tuple[int, Usage]:
        """How many runs the session has in the read model, and their usage and cost summed."""
        rows = await self._rows(
            sql.SQL(
                "SELECT count(*), coalesce(sum(input_tokens), 0), "
                "coalesce(sum(output_tokens), 0), coalesce(sum(cached_input_tokens), 0), "
                "coalesce(sum(cost_micros), 0) FROM {} WHERE tenant_id = %s AND session_id = %s"
            ).format(sql.Identifier(RUNS_TABLE)),
            (tenant_id, session_id),
        )
        count, *totals = rows[0]
        return int(count), Usage(*(int(value) for value in totals))

    async def _rows(
        self, query: sql.SQL | sql.Composed, params: Sequence[Any]
    ) -> list[tuple[Any, ...]]:
        async with self._db.connection() as conn:
            cursor = await conn.execute(query, params)
            return list(await cursor.fetchall())
