"""The read models (ddl/0020) against a fresh fold of the events: every differing row and column.

``read_runs`` and ``read_sessions`` are compared in batches as streams finish; ``read_usage_daily``
(totals per tenant, model and day) once at the end. The folds are the projector's own
(:mod:`agentlane.folds`); the rows come from the read models' owner (:mod:`agentlane.readmodels`).
Only events the projector has applied count (its ``read_models`` checkpoint, read in the same
snapshot), so a projector that lags is not a mismatch.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentlane.folds import RunState, UsageKey, UsageTotals
from agentlane.readmodels import (
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
from agentlane.readmodels import audit as rows_of
from agentlane.replay.verify import BatchedCheck, Check, FoldedStream, Mismatch
from agentlane.store.audit import EventFilter, Snapshot, applied_through, has_checkpoints

# Columns (and the row each fold implies) come from the projector's own module, so a column it
# adds is compared here too.
_RUN_VALUES = RUN_COLUMNS[1:]
_SESSION_VALUES = SESSION_COLUMNS[2:]
_USAGE_VALUES = USAGE_COLUMNS[3:]
#: Tables a rebuild in progress creates beside the live ones.
_REBUILD_LEFTOVERS = ("_rebuild", "_old")


def _usage_values(totals: UsageTotals) -> tuple[Any, ...]:
    return (
        totals.calls, totals.input_tokens, totals.output_tokens, totals.cached_input_tokens,
        totals.cost_micros,
    )


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
        rows = rows_of.runs_by_id(self._conn, [b[2] for b in batch])
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
        for tenant, session, execution in rows_of.orphan_runs(self._conn, self._where.tenant_id):
            yield Mismatch(tenant, session, f"read_runs has run {execution}, which no event names")


class SessionsCheck(BatchedCheck[FoldedStream]):
    """``read_sessions``: one row per stream the projector has seen, equal to its fold."""

    def items(self, stream: FoldedStream) -> Iterable[FoldedStream]:
        return (stream,)

    def compare(self, batch: list[FoldedStream]) -> Iterator[Mismatch]:
        rows = rows_of.sessions_by_key(self._conn, [(s.tenant_id, s.session_id) for s in batch])
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
        for tenant, session in rows_of.orphan_sessions(self._conn, self._where.tenant_id):
            yield Mismatch(tenant, session, "read_sessions has a row for a session without events")


class UsageCheck(Check):
    """``read_usage_daily``: totals per (tenant, model, UTC day), compared once at the end.

    Memory grows with tenants x models x days, not with events.
    """

    def __init__(self, conn: Snapshot, where: EventFilter) -> None:
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
        remaining = dict(self._totals)
        for tenant, model, day, *stored in rows_of.usage_rows(self._conn, self._where.tenant_id):
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


def discover(conn: Snapshot, where: EventFilter) -> ReadModels:
    """The checks for the read-model tables that exist, notes for the rest, and which events
    the projector has applied (its ``read_models`` checkpoint in this snapshot)."""
    found = rows_of.existing_tables(conn)
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


def build_checks(conn: Snapshot, where: EventFilter, tables: Iterable[str]) -> list[Check]:
    """One check per read-model table named (those :func:`discover` found)."""
    kinds: dict[str, type[Check]] = {
        RUNS_TABLE: RunsCheck, SESSIONS_TABLE: SessionsCheck, USAGE_TABLE: UsageCheck
    }
    return [kinds[table](conn, where) for table in tables]  # type: ignore[call-arg]


def _set_projected(conn: Snapshot, models: ReadModels) -> None:
    """Which events the read models include: all of them, or (the projector lags) each stream up
    to where its checkpoint says (:func:`agentlane.store.audit.applied_through`)."""
    if not has_checkpoints(conn):
        models.notes.append("no projector checkpoint: the read models must include every event")
        return
    applied = applied_through(conn, READ_MODELS_CHECKPOINT)
    if applied is not None:
        models.notes.append("the projector lags: read models compared up to its checkpoint")
        models.projected_sql, models.projected_params = applied
