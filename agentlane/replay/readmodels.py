"""The read models (ddl/0020) against a fresh fold of the events: every differing row and column.

``read_runs`` and ``read_sessions`` are compared in batches as streams finish; ``read_usage_daily``
(totals per tenant, model and day) once at the end. The folds are the projector's own
(:mod:`agentlane.folds`). Only events the projector has applied count (its ``read_models``
checkpoint, read in the same snapshot), so a projector that lags is not a mismatch.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from agentlane.folds import RunState, UsageKey, UsageTotals
from agentlane.readmodel import (
    CHECKPOINTS_TABLE,
    READ_MODEL_TABLES,
    READ_MODELS_CHECKPOINT,
    RUN_COLUMNS,
    RUNS_TABLE,
    SESSION_COLUMNS,
    SESSIONS_TABLE,
    USAGE_COLUMNS,
    USAGE_TABLE,
    run_to_row,
    session_to_row,
)
from agentlane.replay.source import EventFilter, stream_rows
from agentlane.replay.verify import BatchedCheck, Check, FoldedStream, Mismatch

# Columns (and the row each fold implies) come from the projector's own module, so a column it
# adds is compared here too.
_RUN_VALUES = RUN_COLUMNS[1:]
_SESSION_VALUES = SESSION_COLUMNS[2:]
_USAGE_VALUES = USAGE_COLUMNS[3:]
#: Tables a rebuild in progress creates beside the live ones.
_REBUILD_LEFTOVERS = ("_rebuild", "_old")


def _usage_values(totals: UsageTotals) -> tuple[Any, ...]:
    return (totals.calls, totals.input_tokens, totals.output_tokens, totals.cached_input_tokens)


def _differences(
    names: Sequence[str], stored: Sequence[Any], expected: Sequence[Any]
) -> str:
    return "; ".join(
        f"{name} is {have!r}, the events say {want!r}"
        for name, have, want in zip(names, stored, expected, strict=True)
        if have != want
    )


class RunsCheck(BatchedCheck[tuple[str, str, str, RunState | None]]):
    """``read_runs``: one row per run the projector has seen, equal to the run's fold."""

    def items(self, stream: FoldedStream) -> Iterable[tuple[str, str, str, RunState | None]]:
        return (
            (stream.tenant_id, stream.session_id, execution, state)
            for execution, state in stream.runs.items()
        )

    def compare(self, batch: list[tuple[str, str, str, RunState | None]]) -> Iterator[Mismatch]:
        query = sql.SQL("SELECT {} FROM {} WHERE execution_id = ANY(%s)").format(
            sql.SQL(", ").join(map(sql.Identifier, RUN_COLUMNS)), sql.Identifier(RUNS_TABLE)
        )
        rows = {row[0]: row[1:] for row in self._conn.execute(query, ([b[2] for b in batch],))}
        for tenant, session, execution, state in batch:
            row = rows.get(execution)
            if state is None:
                if row is not None:
                    yield Mismatch(
                        tenant, session,
                        f"read_runs has run {execution}, which the projector has not seen yet",
                    )
                continue
            if row is None:
                yield Mismatch(tenant, session, f"read_runs has no row for run {execution}")
                continue
            differs = _differences(_RUN_VALUES, row, run_to_row(state)[1:])
            if differs:
                yield Mismatch(tenant, session, f"read_runs row of run {execution}: {differs}")

    def orphans(self) -> Iterator[Mismatch]:
        query = (
            "SELECT r.tenant_id, r.session_id, r.execution_id FROM read_runs r "
            "WHERE NOT EXISTS (SELECT 1 FROM agent_events e WHERE e.execution_id = r.execution_id "
            "AND e.tenant_id = r.tenant_id AND e.session_id = r.session_id)"
        )
        for tenant, session, execution in self.tenant_rows(query, "replay_orphan_runs", "r"):
            yield Mismatch(tenant, session, f"read_runs has run {execution}, which no event names")


class SessionsCheck(BatchedCheck[FoldedStream]):
    """``read_sessions``: one row per stream the projector has seen, equal to its fold."""

    def items(self, stream: FoldedStream) -> Iterable[FoldedStream]:
        return (stream,)

    def compare(self, batch: list[FoldedStream]) -> Iterator[Mismatch]:
        query = sql.SQL(
            "SELECT {} FROM unnest(%s::text[], %s::text[]) AS k(tenant_id, session_id) "
            "JOIN {} s USING (tenant_id, session_id)"
        ).format(
            sql.SQL(", ").join(sql.Identifier("s", name) for name in SESSION_COLUMNS),
            sql.Identifier(SESSIONS_TABLE),
        )
        params = ([s.tenant_id for s in batch], [s.session_id for s in batch])
        rows = {(row[0], row[1]): row[2:] for row in self._conn.execute(query, params)}
        for stream in batch:
            row = rows.get((stream.tenant_id, stream.session_id))
            if stream.session is None:
                if row is not None:
                    yield Mismatch(
                        stream.tenant_id, stream.session_id,
                        "read_sessions has this session, which the projector has not seen yet",
                    )
                continue
            if row is None:
                yield Mismatch(stream.tenant_id, stream.session_id, "read_sessions has no row")
                continue
            differs = _differences(_SESSION_VALUES, row, session_to_row(stream.session)[2:])
            if differs:
                yield Mismatch(stream.tenant_id, stream.session_id, f"read_sessions row: {differs}")

    def orphans(self) -> Iterator[Mismatch]:
        query = (
            "SELECT s.tenant_id, s.session_id FROM read_sessions s WHERE NOT EXISTS "
            "(SELECT 1 FROM agent_events e "
            "WHERE e.tenant_id = s.tenant_id AND e.session_id = s.session_id)"
        )
        for tenant, session in self.tenant_rows(query, "replay_orphan_sessions", "s"):
            yield Mismatch(tenant, session, "read_sessions has a row for a session without events")


class UsageCheck(Check):
    """``read_usage_daily``: totals per (tenant, model, UTC day), compared once at the end.

    Memory grows with tenants x models x days, not with events.
    """

    def __init__(self, conn: psycopg.Connection[Any], where: EventFilter) -> None:
        self._conn = conn
        self._where = where
        self._totals: dict[UsageKey, UsageTotals] = {}

    def add(self, stream: FoldedStream) -> Iterator[Mismatch]:
        self.merge(stream.usage)
        return iter(())

    def merge(self, usage: Iterable[tuple[UsageKey, UsageTotals]]) -> None:
        for key, delta in usage:
            self._totals[key] = self._totals.get(key, UsageTotals()).plus(delta)

    @property
    def totals(self) -> list[tuple[UsageKey, UsageTotals]]:
        return list(self._totals.items())

    def flush(self) -> Iterator[Mismatch]:
        return iter(())

    def orphans(self) -> Iterator[Mismatch]:
        query = sql.SQL("SELECT {} FROM {}").format(
            sql.SQL(", ").join(map(sql.Identifier, USAGE_COLUMNS)), sql.Identifier(USAGE_TABLE)
        )
        params: list[Any] = []
        if self._where.tenant_id is not None:
            query += sql.SQL(" WHERE tenant_id = %s")
            params.append(self._where.tenant_id)
        remaining = dict(self._totals)
        for tenant, model, day, *stored in stream_rows(
            self._conn, query, params, name="replay_usage"
        ):
            expected = remaining.pop(UsageKey(tenant, model, day), UsageTotals())
            differs = _differences(_USAGE_VALUES, stored, _usage_values(expected))
            if differs:
                yield Mismatch(tenant, "*", f"read_usage_daily {model} {day}: {differs}")
        for key, totals in sorted(remaining.items()):
            yield Mismatch(
                key.tenant_id, "*",
                f"read_usage_daily has no row for {key.model} {key.day} "
                f"(the events say {totals.to_json()})",
            )


@dataclass(slots=True)
class ReadModels:
    """The read-model checks this database allows, and what could not be checked."""

    checks: list[Check] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)
    projected_sql: str = "true"
    projected_params: tuple[Any, ...] = ()
    notes: list[str] = field(default_factory=list)


def discover(conn: psycopg.Connection[Any], where: EventFilter) -> ReadModels:
    """The checks for the read-model tables that exist, notes for the rest, and which events
    the projector has applied (its ``read_models`` checkpoint in this snapshot)."""
    found = {
        row[0]
        for row in conn.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema() AND table_name LIKE 'read\\_%%'"
        )
    }
    models = ReadModels()
    for table in (RUNS_TABLE, SESSIONS_TABLE, USAGE_TABLE):
        if table in found:
            models.tables.append(table)
        else:
            models.notes.append(f"read model {table} does not exist: not compared")
    models.checks = build_checks(conn, where, models.tables)
    for table in sorted(found - set(READ_MODEL_TABLES)):
        if table.endswith(_REBUILD_LEFTOVERS):
            continue
        models.notes.append(f"read model {table} has no check in this version: not compared")
    if models.checks:
        _set_projected(conn, models)
    return models


def build_checks(
    conn: psycopg.Connection[Any], where: EventFilter, tables: Iterable[str]
) -> list[Check]:
    """One check per read-model table named (those :func:`discover` found)."""
    kinds: dict[str, type[Check]] = {
        RUNS_TABLE: RunsCheck, SESSIONS_TABLE: SessionsCheck, USAGE_TABLE: UsageCheck
    }
    return [kinds[table](conn, where) for table in tables]  # type: ignore[call-arg]


def _set_projected(conn: psycopg.Connection[Any], models: ReadModels) -> None:
    """Which events the read models include.

    The projector applies a session strictly in ``seq`` order and, on seeing an event, fetches the
    lower ``seq`` it has not seen yet: it has applied each stream up to the highest ``seq`` at or
    before its checkpoint. When nothing is after the checkpoint (the usual case) that is every
    event, and the window that finds the highest ``seq`` is not needed.
    """
    exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (CHECKPOINTS_TABLE,)).fetchone()
    if not exists or not exists[0]:
        models.notes.append("no projector checkpoint: the read models must include every event")
        return
    row = conn.execute(
        sql.SQL("SELECT tx_id, event_id FROM {} WHERE name = %s").format(
            sql.Identifier(CHECKPOINTS_TABLE)
        ),
        (READ_MODELS_CHECKPOINT,),
    ).fetchone()
    checkpoint = (str(row[0]), int(row[1])) if row else ("0", 0)
    behind = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM agent_events "
        "WHERE (tx_id, event_id) > (%s::text::xid8, %s))",
        checkpoint,
    ).fetchone()
    if behind and behind[0]:
        models.notes.append("the projector lags: read models compared up to its checkpoint")
        models.projected_sql = (
            "seq <= coalesce(max(seq) FILTER (WHERE (tx_id, event_id) <= (%s::text::xid8, %s)) "
            "OVER (PARTITION BY tenant_id, session_id), 0)"
        )
        models.projected_params = checkpoint
