"""The soak's checks catch what they are there to catch (a check that cannot fail proves nothing):
a socket that saw an event twice or missed one, a run that never ended or ended twice."""

from __future__ import annotations

from typing import cast

import psycopg

from agentlane.commands import Commands
from agentlane.records import NewEvent
from agentlane.store import EventStore
from tests.fixtures.processes import Proc
from tests.soak.checks import Verdict, check_history, check_transcripts, check_watchers
from tests.soak.stack import Stack
from tests.soak.traffic import Accepted, Watcher


class _At:
    def __init__(self, database_url: str) -> None:
        self.database_url = database_url


def _gateway() -> Proc:
    return cast(Proc, type("P", (), {"name": "gateway"})())


async def test_a_socket_with_a_duplicate_or_a_gap_fails(
    store: EventStore, database_url: str
) -> None:
    written = await store.append_batch(
        [NewEvent("t", "s", "Token", {"text": f"w{i}", "index": i}) for i in range(3)]
    )
    events = [(e.event_id, e.seq) for e in written]
    stack = cast(Stack, _At(database_url))
    for received, ok in (
        (events, True),
        ([events[0], events[1], events[1], events[2]], False),  # one twice
        ([events[0], events[2]], False),  # one missing
        ([events[1], events[0], events[2]], False),  # out of order
    ):
        verdict = Verdict()
        check_watchers(stack, [Watcher(_gateway(), "t", "s", received=list(received))], verdict)
        assert verdict.ok is ok, (received, verdict.results)


async def test_a_run_that_did_not_end_or_ended_twice_fails(
    commands: Commands, store: EventStore, database_url: str
) -> None:
    runs = []
    for run_id in ("once", "never", "twice"):
        accepted = await commands.start_run(
            tenant_id="t", session_id=run_id, run_id=run_id, message="m"
        )
        runs.append(Accepted("t", run_id, run_id, accepted.execution_id))
    await store.append(NewEvent("t", "once", "Completed", {"answer": "a"}, runs[0].execution_id))
    # A second end is what the database refuses (ddl/0015); written behind its back here.
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DROP INDEX agent_events_one_end_per_run")
    for _ in range(2):
        await store.append(
            NewEvent("t", "twice", "Completed", {"answer": "a"}, runs[2].execution_id)
        )
    verdict = Verdict()
    check_history(cast(Stack, _At(database_url)), runs, verdict)
    problems = verdict.results["every accepted run ended exactly once"]
    assert [p.split(" ")[1] for p in problems] == ["(never)", "(twice)"], problems


async def test_a_run_failed_by_the_database_fails_the_soak(
    commands: Commands, store: EventStore, database_url: str
) -> None:
    runs = []
    for run_id, reason in (
        ("model", "ActivityError: activity 'model' (step 0) failed after 4 attempt(s)"),
        ("db", "StoreUnavailable: database unavailable: server closed the connection"),
    ):
        accepted = await commands.start_run(
            tenant_id="t", session_id=run_id, run_id=run_id, message="m"
        )
        runs.append(Accepted("t", run_id, run_id, accepted.execution_id))
        await store.append(
            NewEvent("t", run_id, "Failed", {"reason": reason}, accepted.execution_id)
        )
    verdict = Verdict()
    check_history(cast(Stack, _At(database_url)), runs, verdict)
    problems = verdict.results["no run failed because of the database"]
    assert len(problems) == 1 and "StoreUnavailable" in problems[0], problems


async def test_a_run_whose_stream_reads_garbled_fails_the_soak(
    commands: Commands, store: EventStore, database_url: str
) -> None:
    """Two runs whose first attempt a crash cut after "w0 w1": one retried as a new, declared
    attempt (clean), one whose retry went on under the same attempt (a reader would show
    "w0 w1" in front of the answer). Only the second is reported."""
    executions = {}
    for session in ("clean", "garbled"):
        accepted = await commands.start_run(
            tenant_id="t", session_id=session, run_id=session, message="m"
        )
        ex = executions[session] = accepted.execution_id

        def token(text: str, index: int, attempt: int, session: str = session,
                  ex: str = ex) -> NewEvent:
            data = {"text": text, "index": index, "step": 0, "attempt": attempt}
            return NewEvent("t", session, "Token", data, ex)

        retry = [
            NewEvent("t", session, "StepFailed", {
                "step": 0, "name": "model", "attempt": 1, "error": "abandoned",
                "retryable": True, "abandoned": True}, ex),
            token("the answer", 0, 2),
        ] if session == "clean" else [token("the answer", 1, 1)]
        await store.append_batch([
            token("w0 w1 ", 0, 1), *retry,
            NewEvent("t", session, "Completed", {"answer": "the answer"}, ex),
        ])
    verdict = Verdict()
    check_transcripts(cast(Stack, _At(database_url)), verdict)
    problems = verdict.results["every completed run reads clean"]
    assert [p.split(":")[0] for p in problems] == [executions["garbled"]], problems
