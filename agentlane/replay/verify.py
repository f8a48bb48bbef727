"""``replay verify``: prove the stored history is intact and the read models agree with it.

One pass over every event in (tenant, session, seq) order, in constant memory: per stream the hash
chain, ``seq`` contiguity, ``event_id`` order, the stream head and the journal invariants; the pure
folds of each stream go to the read-model checks (:mod:`agentlane.replay.readmodel_checks`). Every
disagreement becomes a :class:`Mismatch`; nothing stops at the first one.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from agentlane.events import TERMINAL_TYPES
from agentlane.folds import (
    RunFold,
    RunState,
    SessionFold,
    SessionState,
    UsageKey,
    UsageTotals,
    usage_of,
)
from agentlane.hashchain import GENESIS_HASH
from agentlane.replay.digest import Digester, fast_payload
from agentlane.replay.rows import EventRow
from agentlane.store.audit import EventFilter, Snapshot, heads, orphan_heads, verify_rows

#: Streams per batched lookup of heads and read-model rows (one round trip per batch).
BATCH = 1000

#: Completing a workflow step: at most one of these per (execution, step) (invariant 5). The same
#: set as the unique index of ddl/0015: verify re-checks what that index enforces on writes.
_STEP_COMPLETIONS = frozenset({"StepCompleted", "ToolResult", "TimerFired"})

#: Commands may race a run's end (a cancel just after it completed); workflow events may not.
_COMMAND_TYPES = frozenset({"CancelRequested", "SignalReceived"})


@dataclass(frozen=True, slots=True)
class Mismatch:
    """One place where the history or a read model disagrees with what it should be."""

    tenant_id: str
    session_id: str
    what: str
    seq: int | None = None
    event_id: int | None = None

    def describe(self) -> str:
        place = f"{self.tenant_id}/{self.session_id}"
        if self.seq is not None:
            place += f" seq {self.seq}"
        if self.event_id is not None:
            place += f" event {self.event_id}"
        return f"{place}: {self.what}"


@dataclass(frozen=True, slots=True)
class FoldedStream:
    """A stream after its last event, folded over the events the read models have seen."""

    tenant_id: str
    session_id: str
    last_seq: int
    last_hash: bytes
    session: SessionState | None
    runs: dict[str, RunState | None]
    usage: list[tuple[UsageKey, UsageTotals]]


class StreamCheck:
    """One stream's chain, order and journal invariants; feed its events in ``seq`` order.

    The read-model fold stops at the first event marked not ``projected``: the projector applies
    a stream strictly in ``seq`` order, so what it has applied is a prefix (which prefix is decided
    in SQL, see :func:`agentlane.store.audit.applied_through`), and a lagging projector is not a
    mismatch.
    """

    def __init__(self, tenant_id: str, session_id: str, digester: Digester) -> None:
        self.tenant_id = tenant_id
        self.session_id = session_id
        self._digester = digester
        self._last_seq = 0
        self._last_event_id = 0
        self._last_hash = GENESIS_HASH
        self._accepted: set[str] = set()
        # Runs accepted and not yet ended, in the order they were accepted.
        self._pending: dict[str, int] = {}
        self._started: dict[str, int] = {}
        self._ended: dict[str, int] = {}
        self._completed_steps: set[tuple[str, Any]] = set()
        self._projecting = True
        self._session = SessionFold()
        # ``None``: a run the read models have not seen yet (its events are past the projector).
        self._runs: dict[str, RunFold | None] = {}
        self._usage: list[tuple[UsageKey, UsageTotals]] = []

    def _mismatch(self, event: EventRow, what: str) -> Mismatch:
        return Mismatch(self.tenant_id, self.session_id, what, event.seq, event.event_id)

    def feed(
        self,
        event: EventRow,
        payload: str,
        prev_hash: bytes,
        digest: bytes,
        *,
        projected: bool = True,
    ) -> list[Mismatch]:
        """Check one event (the next by ``seq``); every problem it shows. ``payload`` is the
        jsonb text ``event.data`` was decoded from by
        :func:`~agentlane.replay.digest.fast_payload`."""
        problems: list[Mismatch] = []
        seq = event.seq
        if seq != self._last_seq + 1:
            problems.append(self._mismatch(event, f"seq {seq}, expected {self._last_seq + 1}"))
        if event.event_id <= self._last_event_id:
            problems.append(
                self._mismatch(
                    event, f"event_id {event.event_id} does not grow with seq "
                    f"(the previous event is {self._last_event_id})"
                )
            )
        if prev_hash != self._last_hash:
            problems.append(self._mismatch(event, "prev_hash is not the previous event's hash"))
        intact, event = self._digester.verify(prev_hash, event, digest, payload)
        if not intact:
            problems.append(
                self._mismatch(event, "hash does not match the event's content (edited)")
            )
        self._last_seq = seq
        self._last_event_id = event.event_id
        self._last_hash = digest
        execution = event.execution_id
        if execution is not None:
            self._journal(event, execution, problems)
        if self._projecting and projected:
            self._session.feed(event)
            if execution is not None:
                run = self._runs.get(execution)
                if run is None:
                    run = self._runs[execution] = RunFold()
                run.feed(event)
            if event.type == "Usage":
                usage = usage_of(event)
                if usage is not None:
                    self._usage.append(usage)
        else:
            self._projecting = False
            if execution is not None:
                # Known to the history, not yet to the read models: its row must not be ahead.
                self._runs.setdefault(execution, None)
        return problems

    def _journal(self, event: EventRow, execution: str, problems: list[Mismatch]) -> None:
        kind = event.type
        if kind == "RunAccepted":
            if execution not in self._accepted:
                self._accepted.add(execution)
                self._pending[execution] = event.seq
            return
        if execution not in self._accepted:
            problems.append(
                self._mismatch(event, f"{kind} of run {execution} before its RunAccepted")
            )
            return
        if execution in self._ended:
            first = self._ended[execution]
            if kind in TERMINAL_TYPES:
                problems.append(
                    self._mismatch(
                        event, f"second terminal event of run {execution} (first: event {first})"
                    )
                )
            elif kind not in _COMMAND_TYPES:
                problems.append(
                    self._mismatch(
                        event, f"{kind} of run {execution} after its terminal event (event {first})"
                    )
                )
            return
        if kind == "RunStarted":
            if execution in self._started:
                problems.append(
                    self._mismatch(
                        event, f"second RunStarted of run {execution} "
                        f"(first: event {self._started[execution]})"
                    )
                )
            self._started.setdefault(execution, event.event_id)
            accepted_seq = self._pending[execution]
            for other, seq in self._pending.items():
                if other != execution and seq < accepted_seq:
                    problems.append(
                        self._mismatch(
                            event, f"run {execution} started while run {other} "
                            "(accepted before it) had not ended"
                        )
                    )
                    break
        elif kind in _STEP_COMPLETIONS:
            key = (execution, event.data.get("step"))
            if key in self._completed_steps:
                problems.append(
                    self._mismatch(
                        event, f"second completion ({kind}) of run {execution} step {key[1]}"
                    )
                )
            self._completed_steps.add(key)
        elif kind in TERMINAL_TYPES:
            self._ended[execution] = event.event_id
            del self._pending[execution]

    def finish(self) -> FoldedStream:
        runs = {
            execution: None if fold is None else fold.state()
            for execution, fold in self._runs.items()
        }
        return FoldedStream(
            self.tenant_id, self.session_id, self._last_seq, self._last_hash,
            self._session.state(), runs, self._usage,
        )


class Check(abc.ABC):
    """A comparison fed with every folded stream: batched lookups, then rows without events."""

    @abc.abstractmethod
    def add(self, stream: FoldedStream) -> Iterator[Mismatch]:
        """Take one finished stream; may compare a full batch now."""

    @abc.abstractmethod
    def flush(self) -> Iterator[Mismatch]:
        """Compare what is still batched (after the last stream)."""

    @abc.abstractmethod
    def orphans(self) -> Iterator[Mismatch]:
        """Rows that no stream accounts for (once, after every stream of every worker)."""


Item = TypeVar("Item")


class BatchedCheck(Check, Generic[Item]):
    """A check that looks rows up for ``BATCH`` items at a time (one query, not one per stream)."""

    def __init__(self, conn: Snapshot, where: EventFilter) -> None:
        self._conn = conn
        self._where = where
        self._batch: list[Item] = []

    @abc.abstractmethod
    def items(self, stream: FoldedStream) -> Iterable[Item]:
        """What of a finished stream this check compares."""

    @abc.abstractmethod
    def compare(self, batch: list[Item]) -> Iterator[Mismatch]:
        """Compare one batch with the rows it names."""

    def add(self, stream: FoldedStream) -> Iterator[Mismatch]:
        self._batch.extend(self.items(stream))
        if len(self._batch) >= BATCH:
            yield from self.flush()

    def flush(self) -> Iterator[Mismatch]:
        batch, self._batch = self._batch, []
        if batch:
            yield from self.compare(batch)


class HeadCheck(BatchedCheck[FoldedStream]):
    """``agent_stream_heads`` must name each stream's last event (seq and hash)."""

    def items(self, stream: FoldedStream) -> Iterable[FoldedStream]:
        return (stream,)

    def compare(self, batch: list[FoldedStream]) -> Iterator[Mismatch]:
        found = heads(self._conn, [(s.tenant_id, s.session_id) for s in batch])
        for stream in batch:
            head = found.get((stream.tenant_id, stream.session_id))
            if head is None:
                yield Mismatch(stream.tenant_id, stream.session_id, "events without a stream head")
            elif head[0] != stream.last_seq:
                yield Mismatch(
                    stream.tenant_id, stream.session_id,
                    f"the stream head says last seq {head[0]}, the last event has seq "
                    f"{stream.last_seq}",
                )
            elif head[1] != stream.last_hash:
                yield Mismatch(
                    stream.tenant_id, stream.session_id,
                    "the stream head's hash is not the last event's hash", stream.last_seq,
                )

    def orphans(self) -> Iterator[Mismatch]:
        for tenant, session, last_seq in orphan_heads(self._conn, self._where):
            yield Mismatch(tenant, session, f"a stream head (last seq {last_seq}) without events")


@dataclass(slots=True)
class Summary:
    events: int = 0
    streams: int = 0
    runs: int = 0
    mismatches: int = 0

    def plus(self, other: Summary) -> Summary:
        return Summary(
            self.events + other.events,
            self.streams + other.streams,
            self.runs + other.runs,
            self.mismatches + other.mismatches,
        )


def verify(
    conn: Snapshot,
    where: EventFilter,
    *,
    checks: Iterable[Check] = (),
    projected_sql: str = "true",
    projected_params: Iterable[Any] = (),
    report: Callable[[Mismatch], None],
    advance: Callable[[int], None] = lambda n: None,
) -> Summary:
    """Check every stream matching ``where`` (everything, or one tenant), then the rows no stream
    accounts for; report each mismatch. See :func:`scan` for ``projected_sql``."""
    every = [HeadCheck(conn, where), *checks]
    summary = scan(
        conn, where, every, projected_sql=projected_sql, projected_params=projected_params,
        report=report, advance=advance,
    )
    for check in every:
        for problem in check.orphans():
            summary.mismatches += 1
            report(problem)
    return summary


def scan(
    conn: Snapshot,
    where: EventFilter,
    checks: Sequence[Check],
    *,
    projected_sql: str,
    projected_params: Iterable[Any],
    report: Callable[[Mismatch], None],
    advance: Callable[[int], None],
) -> Summary:
    """Check every stream matching ``where`` and hand each folded stream to ``checks``.

    ``projected_sql`` is a boolean SQL expression over an event row: whether the projector has
    applied it (the read-model fold stops at a stream's first event where it is false; see
    :func:`agentlane.store.audit.applied_through`).
    """
    summary = Summary()

    def emit(problems: Iterable[Mismatch]) -> None:
        for problem in problems:
            summary.mismatches += 1
            report(problem)

    def close(stream: StreamCheck) -> None:
        summary.streams += 1
        folded = stream.finish()
        summary.runs += len(folded.runs)
        for check in checks:
            emit(check.add(folded))

    digester = Digester()
    # ``EventRow(...)`` runs a Python-level ``__new__``; this builds the same tuple in C.
    new_row = tuple.__new__
    current: StreamCheck | None = None
    pending = 0
    rows = verify_rows(conn, where, applied=projected_sql, applied_params=projected_params)
    for row in rows:
        tenant, session = row[2], row[3]
        if current is None or session != current.session_id or tenant != current.tenant_id:
            if current is not None:
                close(current)
            current = StreamCheck(tenant, session, digester)
        data = fast_payload(row[6])
        event = new_row(
            EventRow, (row[0], row[1], tenant, session, row[4], row[5], data, row[7], None)
        )
        problems = current.feed(event, row[6], row[8], row[9], projected=row[10])
        if problems:
            emit(problems)
        pending += 1
        if pending == 5000:
            summary.events += pending
            advance(pending)
            pending = 0
    if current is not None:
        close(current)
    summary.events += pending
    advance(pending)
    for check in checks:
        emit(check.flush())
    return summary
