"""The soak's checks catch what they are there to catch (a check that cannot fail proves nothing):
a socket that saw an event twice or missed one, a run that never ended or ended twice."""

from __future__ import annotations

from typing import cast

import psycopg

from agentlane.commands import Commands
from agentlane.records import NewEvent
from agentlane.store import EventStore
from tests.fixtures.processes import Proc
from tests.soak.checks import Verdict, check_history, check_watchers
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
