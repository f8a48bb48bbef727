"""The commands: start a run, cancel it, signal it. One code path for HTTP, WebSocket and tests.

Each command appends its events and updates the runners' work index (:mod:`agentlane.run_index`)
in one transaction; once it has committed, wakes the owning shard with NOTIFY (a hint; owners also
poll). A tenant's cap on unfinished runs is enforced in that transaction, so whatever door a start
comes through, and however many race, the cap is never exceeded.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from agentlane.db import Connection
from agentlane.errors import (
    CommandError,
    EventNotFound,
    RunConflict,
    RunFinished,
    RunNotFound,
    SessionExists,
    TooManyActiveRuns,
)
from agentlane.events import TERMINAL_STATUS
from agentlane.records import NewEvent, StoredEvent
from agentlane.run_index import ActiveRunCap, NewRun, RunIndex
from agentlane.sharding import shard_for
from agentlane.store import Collective, EventStore

OnConflict = Literal["enqueue", "reject", "interrupt"]
#: ``runId``, ``sessionId`` (and ids in paths): 1-128 characters of ``[A-Za-z0-9._:-]``; the one
#: definition the HTTP models, the OpenAPI document and the gateway use too.
IDENTIFIER_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"
_IDENTIFIER = re.compile(r"[A-Za-z0-9._:-]{1,128}")


@dataclass(frozen=True, slots=True)
class RunAccepted:
    """The answer to a start: the run's identity and whether this call created it."""

    execution_id: str
    session_id: str
    run_id: str
    event_id: int
    status: str
    created: bool


def is_identifier(value: str) -> bool:
    """True for 1-128 characters of ``[A-Za-z0-9._:-]``."""
    return _IDENTIFIER.fullmatch(value) is not None  # not match(): "$" lets a trailing "\n" in


def check_identifier(field: str, value: str) -> None:
    """``runId`` and ``sessionId`` are 1-128 characters of ``[A-Za-z0-9._:-]``."""
    if not is_identifier(value):
        raise CommandError(f"{field}: must be 1-128 characters of [A-Za-z0-9._:-]")


def workflow_version_of(events: Sequence[StoredEvent]) -> tuple[str, str] | None:
    """``(workflow, version)`` a run runs with, from its events: the version it started with,
    or the last one an operator moved it to (``VersionMoved``). None before it started."""
    started = next((e.data for e in events if e.type == "RunStarted"), None)
    if started is None:
        return None
    moves = [e.data["toVersion"] for e in events if e.type == "VersionMoved"]
    return str(started["workflow"]), moves[-1] if moves else str(started["version"])


def run_idempotency_key(run_id: str) -> str:
    return f"run:{run_id}"


@dataclass(frozen=True, slots=True)
class BudgetCap:
    """The server's most model calls, model tokens and money per run (0: no cap): a run's budget is
    set to it when the client asks for none or more, and is recorded in the run's
    ``RunAccepted``, so the workflow and every replay of it see the cap the run was accepted
    under."""

    model_calls: int = 0
    tokens: int = 0
    #: Wall time from acceptance after which an unfinished run is cancelled.
    seconds: float = 0.0
    #: Money a run's priced model calls may cost, in millionths of the price table's currency.
    cost_micros: int = 0

    def apply(self, requested: dict[str, Any] | None) -> dict[str, Any] | None:
        budget = dict(requested or {})
        for cap, current, limit in (
            ("capAttempts", "maxAttempts", self.model_calls),
            ("capTokens", "maxTokens", self.tokens),
            ("capCostMicros", "maxCostMicros", self.cost_micros),
        ):
            if limit > 0:
                budget[cap] = limit
                budget[current] = min(budget.get(current) or limit, limit)
        if self.seconds > 0:
            budget["capSeconds"] = self.seconds
        return budget or None

    @property
    def deadline_s(self) -> float | None:
        return self.seconds if self.seconds > 0 else None


#: A command's change to its run's index row, in the command's transaction: (conn, tenant,
#: execution) -> whether the row was there to change.
IndexUpdate = Callable[[Connection, str, str], Awaitable[bool]]


async def _make_due(conn: Connection, tenant_id: str, execution_id: str) -> bool:
    return await RunIndex.wake(conn, tenant_id, [execution_id]) > 0


def _enabled(cap: ActiveRunCap | None) -> ActiveRunCap | None:
    return cap if cap is not None and cap.limit > 0 else None


class _RunEndedMeanwhile(Exception):
    """Internal: the run ended between its lookup and the command's transaction."""


class Commands:
    """Carries out commands on ``store`` and keeps ``runs`` (the work index) in step with them;
    with ``cap``, no tenant ever has more than ``cap.limit`` unfinished runs."""

    def __init__(
        self,
        store: EventStore,
        runs: RunIndex,
        *,
        cap: ActiveRunCap | None = None,
        budget_cap: BudgetCap | None = None,
        tenant_caps: Mapping[str, tuple[ActiveRunCap | None, BudgetCap]] | None = None,
        run_models: Collection[str] = (),
    ) -> None:
        """``run_models``: the models a run may choose (``options.model``); none: no choice."""
        self.store = store
        self.run_models = frozenset(run_models)
        self.runs = runs
        self.cap = _enabled(cap)
        self.budget_cap = budget_cap or BudgetCap()
        #: A tenant's own caps, instead of ``cap`` and ``budget_cap``.
        self._tenant_caps = {t: (_enabled(c), b) for t, (c, b) in (tenant_caps or {}).items()}

    def caps_of(self, tenant_id: str) -> tuple[ActiveRunCap | None, BudgetCap]:
        """The active-run cap and the per-run caps ``tenant_id``'s runs are accepted under."""
        return self._tenant_caps.get(tenant_id, (self.cap, self.budget_cap))

    async def start_run(
        self,
        *,
        tenant_id: str,
        session_id: str,
        run_id: str,
        message: str,
        on_conflict: OnConflict = "enqueue",
        budget: dict[str, int] | None = None,
        approval_timeout_s: float | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> RunAccepted:
        """Accept a run once per ``(tenant, runId)``: a retry or a racing duplicate gets the same
        execution back and writes nothing. A new run over the tenant's cap raises
        TooManyActiveRuns; a retry of an accepted one is an answer, not new work. ``options``
        (the run's own model, tools, system prompt: ``agentlane.events.RunOptions``) are
        recorded with it; a model the server does not offer is refused."""
        check_identifier("sessionId", session_id)
        check_identifier("runId", run_id)
        model = (options or {}).get("model")
        if model is not None and model not in self.run_models:
            offered = ", ".join(sorted(self.run_models)) or "none (AGENTLANE_CMD_RUN_MODELS)"
            raise CommandError(f"options.model: {model!r} is not offered here; offered: {offered}")
        cap, budget_cap = self.caps_of(tenant_id)
        await self._refuse_early_when_at_cap(tenant_id, run_id, cap)
        execution_id = f"ex_{uuid.uuid4().hex}"
        shard = shard_for(tenant_id, session_id, self.store.shards)
        data: dict[str, Any] = {"runId": run_id, "message": message, "onConflict": on_conflict}
        budget = budget_cap.apply(budget)
        if budget:
            data["budget"] = budget
        if approval_timeout_s is not None:
            data["approvalTimeoutSeconds"] = approval_timeout_s
        if options:
            data["options"] = dict(options)

        async def index_run(conn: Connection, written: list[StoredEvent]) -> None:
            active = await RunIndex.session_runs(conn, tenant_id, session_id)
            if active and on_conflict == "reject":
                raise RunConflict(session_id, active[0])
            if active and on_conflict == "interrupt":
                await self.store.append_in_transaction(
                    conn,
                    [
                        NewEvent(
                            tenant_id,
                            session_id,
                            "CancelRequested",
                            {"reason": f"interrupted by run {run_id}"},
                            execution_id=other,
                        )
                        for other in active
                    ],
                )
                await RunIndex.wake(conn, tenant_id, active)
            await RunIndex.enqueue(
                conn,
                execution_id=execution_id,
                tenant_id=tenant_id,
                session_id=session_id,
                run_id=run_id,
                shard_id=shard,
                accepted_seq=written[0].seq,
                deadline_s=budget_cap.deadline_s,
            )
            if cap is not None:
                await RunIndex.hold_caps(conn, {tenant_id: cap})

        accepted = NewEvent(
            tenant_id,
            session_id,
            "RunAccepted",
            data,
            execution_id=execution_id,
            idempotency_key=run_idempotency_key(run_id),
        )
        if on_conflict == "enqueue":
            # An enqueued run waits its turn whatever else is active, so nothing needs looking
            # at: it is indexed with the other starts of its group commit, in one statement.
            new_run = NewRun(
                execution_id, tenant_id, session_id, run_id, shard, cap, budget_cap.deadline_s
            )
            result = await self.store.append(
                accepted, collective=Collective(RunIndex.enqueue_all, new_run)
            )
        else:
            result = await self.store.append(accepted, in_transaction=index_run)
        event = result.event
        status = "queued"
        if result.created:
            self.runs.wake_shard(shard)
        else:
            status = await self.run_status(tenant_id, event.execution_id or "")
        return RunAccepted(
            execution_id=event.execution_id or "",
            session_id=event.session_id,
            run_id=run_id,
            event_id=event.event_id,
            status=status,
            created=result.created,
        )

    async def _refuse_early_when_at_cap(
        self, tenant_id: str, run_id: str, cap: ActiveRunCap | None
    ) -> None:
        """The cheap check before any write: a flooding tenant is refused here, and the
        transaction's exact check only decides races (its failure costs a group commit a split).
        """
        if cap is None or await self.runs.count_active(tenant_id, limit=cap.limit) < cap.limit:
            return
        key = run_idempotency_key(run_id)
        if await self.store.find_by_idempotency_key(tenant_id, key) is None:
            raise TooManyActiveRuns(tenant_id, cap.limit, retry_after_s=cap.retry_after_s)

    async def cancel_run(
        self, *, tenant_id: str, execution_id: str, reason: str | None = None
    ) -> StoredEvent | None:
        """Ask a run to stop. Returns the CancelRequested event, or None if the run already
        ended."""
        return await self._command_run(
            tenant_id,
            execution_id,
            "CancelRequested",
            {"reason": reason} if reason else {},
            finished_ok=True,
        )

    async def signal_run(
        self, *, tenant_id: str, execution_id: str, name: str, payload: Any = None
    ) -> StoredEvent:
        """Deliver a named signal (an approval, a budget raise) to a run that has not ended."""
        if not name or len(name) > 128:
            raise CommandError("name: must be 1-128 characters")
        event = await self._command_run(
            tenant_id,
            execution_id,
            "SignalReceived",
            {"name": name, "payload": payload},
            finished_ok=False,
        )
        assert event is not None
        return event

    async def fork_session(
        self, *, tenant_id: str, session_id: str, at_event_id: int, new_session_id: str
    ) -> StoredEvent:
        """Start ``new_session_id`` as a fork of ``session_id`` at its event ``at_event_id``: one
        ``SessionForked`` event, the new session's first, naming the parent, the cut and the
        hash of the parent's event there. A new run in the fork continues from the parent's
        state at the cut; the parent is not touched. The same fork asked again is answered with
        the same event; a session that already has events cannot become a fork."""
        check_identifier("sessionId", session_id)
        check_identifier("newSessionId", new_session_id)
        if new_session_id == session_id:
            raise CommandError("newSessionId: must differ from the session forked")
        cut = await self.store.event_at(tenant_id, session_id, at_event_id)
        if cut is None:
            raise EventNotFound(session_id, at_event_id)
        at_seq, digest = cut
        data = {"parentSessionId": session_id, "atEventId": at_event_id, "atSeq": at_seq,
                "parentHash": digest.hex()}

        async def first_of_its_session(conn: Connection, written: list[StoredEvent]) -> None:
            if written[0].seq != 1:
                raise SessionExists(new_session_id)

        result = await self.store.append(
            NewEvent(tenant_id, new_session_id, "SessionForked", data,
                     idempotency_key=f"fork:{new_session_id}"),
            in_transaction=first_of_its_session,
        )
        if not result.created and result.event.data != data:
            raise SessionExists(new_session_id)
        return result.event

    async def move_version(
        self, *, tenant_id: str, execution_id: str, to_version: str, reason: str | None = None
    ) -> StoredEvent | None:
        """Move an unfinished, started run to ``to_version`` of its workflow (``VersionMoved``):
        its next advance replays its journal with that code, on a runner that has it. None when
        it runs with that version already. Only ever explicit: prove the versions compatible
        (golden replays) before moving runs."""
        if not to_version or len(to_version) > 64:
            raise CommandError("toVersion: must be 1-64 characters")
        events = await self.store.read_execution(tenant_id, execution_id)
        if not events:
            raise RunNotFound(execution_id)
        pinned = workflow_version_of(events)
        if pinned is None:
            raise CommandError(
                f"run {execution_id!r} has not started: it starts on the newest version of the "
                "runner that takes it"
            )
        workflow, current = pinned
        if current == to_version:
            return None
        data = {"workflow": workflow, "fromVersion": current, "toVersion": to_version}
        if reason:
            data["reason"] = reason
        return await self._command_run(
            tenant_id, execution_id, "VersionMoved", data, finished_ok=False
        )

    async def expire_run(self, *, tenant_id: str, execution_id: str) -> StoredEvent | None:
        """Cancel a run past its wall-time deadline (its owner's sweep), once: None when it
        ended meanwhile or another owner expired it first."""
        return await self._command_run(
            tenant_id,
            execution_id,
            "CancelRequested",
            {"reason": "deadline: the run exceeded the wall time the server allows"},
            finished_ok=True,
            index=RunIndex.expire,
        )

    async def run_status(self, tenant_id: str, execution_id: str) -> str:
        """Status from the work index, or from the journal once the run has ended."""
        status = await self.runs.status(tenant_id, execution_id)
        if status is not None:
            return status
        events = await self.store.read_execution(tenant_id, execution_id)
        if not events:
            raise RunNotFound(execution_id)
        for event in reversed(events):
            if event.type in TERMINAL_STATUS:
                return TERMINAL_STATUS[event.type]
        return "queued"

    async def _command_run(
        self,
        tenant_id: str,
        execution_id: str,
        event_type: str,
        data: dict[str, Any],
        *,
        finished_ok: bool,
        index: IndexUpdate | None = None,
    ) -> StoredEvent | None:
        """Append a command to a run that has not ended, with ``index`` (default: make it due)
        in the same transaction; ``index`` returning False means the run has no row any more
        (or not the one the command needs): nothing is written."""
        update = index or _make_due
        route = await self.runs.route(tenant_id, execution_id)
        if route is None:
            status = await self.run_status(tenant_id, execution_id)  # raises RunNotFound
            if finished_ok:
                return None
            raise RunFinished(execution_id, status)
        session_id, shard = route

        async def wake(conn: Connection, written: list[StoredEvent]) -> None:
            if not await update(conn, tenant_id, execution_id):
                # The run ended between our read and this transaction: write nothing.
                raise _RunEndedMeanwhile()

        try:
            result = await self.store.append(
                NewEvent(tenant_id, session_id, event_type, data, execution_id=execution_id),
                in_transaction=wake,
            )
        except _RunEndedMeanwhile:
            if finished_ok:
                return None
            raise RunFinished(
                execution_id, await self.run_status(tenant_id, execution_id)
            ) from None
        self.runs.wake_shard(shard)
        return result.event
