"""Invariant 3 and the commands' single code path: start, cancel, signal."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from agentlane.commands import Commands
from agentlane.errors import CommandError, RunConflict, RunNotFound
from agentlane.store import EventStore


def index_rows(database_url: str) -> list[tuple[str, str, str]]:
    with psycopg.connect(database_url) as conn:
        return [
            (r[0], r[1], r[2])
            for r in conn.execute(
                "SELECT execution_id, session_id, status FROM run_index ORDER BY accepted_seq"
            )
        ]


async def test_racing_starts_make_one_run_and_one_index_row(
    commands: Commands, database_url: str
) -> None:
    answers = await asyncio.gather(
        *(
            commands.start_run(tenant_id="t1", session_id="s1", run_id="r1", message="hi")
            for _ in range(50)
        )
    )
    assert len({a.execution_id for a in answers}) == 1
    assert sum(a.created for a in answers) == 1
    assert {(a.event_id, a.status) for a in answers} == {(answers[0].event_id, "queued")}
    assert index_rows(database_url) == [(answers[0].execution_id, "s1", "queued")]


async def test_reject_refuses_while_a_run_is_active_and_writes_nothing(
    commands: Commands, store: EventStore, database_url: str
) -> None:
    first = await commands.start_run(tenant_id="t1", session_id="s", run_id="a", message="m")
    with pytest.raises(RunConflict):
        await commands.start_run(
            tenant_id="t1", session_id="s", run_id="b", message="m", on_conflict="reject"
        )
    assert [e.type for e in await store.read_session("t1", "s")] == ["RunAccepted"]
    assert [r[0] for r in index_rows(database_url)] == [first.execution_id]


async def test_interrupt_cancels_the_active_run_in_the_same_transaction(
    commands: Commands, store: EventStore
) -> None:
    first = await commands.start_run(tenant_id="t1", session_id="s", run_id="a", message="m")
    await commands.start_run(
        tenant_id="t1", session_id="s", run_id="b", message="m", on_conflict="interrupt"
    )
    events = await store.read_session("t1", "s")
    assert [(e.type, e.execution_id == first.execution_id) for e in events] == [
        ("RunAccepted", True),
        ("RunAccepted", False),
        ("CancelRequested", True),
    ]


async def test_interrupt_cancels_only_the_sessions_unfinished_runs_and_only_once(
    commands: Commands, store: EventStore, database_url: str
) -> None:
    async def start(tenant: str, session: str, run: str) -> str:
        accepted = await commands.start_run(
            tenant_id=tenant, session_id=session, run_id=run, message="m"
        )
        return accepted.execution_id

    older = [await start("t1", "s", "a"), await start("t1", "s", "b")]  # both unfinished
    untouched = [
        await start("t2", "s", "c"),  # another tenant's session of the same name
        await start("t1", "other", "d"),  # another session of the tenant
    ]
    for _ in range(2):  # the second is a retry of the first: same runId, nothing more written
        await commands.start_run(
            tenant_id="t1", session_id="s", run_id="e", message="m", on_conflict="interrupt"
        )
    cancels = [
        e.execution_id
        for tenant, session in (("t1", "s"), ("t2", "s"), ("t1", "other"))
        for e in await store.read_session(tenant, session)
        if e.type == "CancelRequested"
    ]
    assert sorted(cancels) == sorted(older)
    assert not set(untouched) & set(cancels)


async def test_cancel_and_signal_go_to_the_run_and_wake_it(
    commands: Commands, store: EventStore
) -> None:
    run = await commands.start_run(tenant_id="t1", session_id="s", run_id="a", message="m")
    await commands.signal_run(
        tenant_id="t1", execution_id=run.execution_id, name="approve", payload={"ok": True}
    )
    await commands.cancel_run(tenant_id="t1", execution_id=run.execution_id)
    types = [e.type for e in await store.read_execution("t1", run.execution_id)]
    assert types == ["RunAccepted", "SignalReceived", "CancelRequested"]


async def test_another_tenants_run_is_not_found(commands: Commands) -> None:
    run = await commands.start_run(tenant_id="t1", session_id="s", run_id="a", message="m")
    with pytest.raises(RunNotFound):
        await commands.cancel_run(tenant_id="t2", execution_id=run.execution_id)
    with pytest.raises(RunNotFound):
        await commands.signal_run(tenant_id="t2", execution_id=run.execution_id, name="x")
    with pytest.raises(RunNotFound):
        await commands.run_status("t2", run.execution_id)
    assert await commands.run_status("t1", run.execution_id) == "queued"


@pytest.mark.parametrize("bad", ["", "has space", "x" * 129, "semi;colon"])
async def test_bad_identifiers_are_refused(
    commands: Commands, store: EventStore, bad: str
) -> None:
    with pytest.raises(CommandError, match="runId"):
        await commands.start_run(tenant_id="t1", session_id="s", run_id=bad, message="m")
    with pytest.raises(CommandError, match="sessionId"):
        await commands.start_run(tenant_id="t1", session_id=bad, run_id="r", message="m")
    assert await store.read_session("t1", "s") == []


async def test_a_trailing_newline_is_not_an_identifier(commands: Commands) -> None:
    """Regression: re.match with "$" accepted "abc\\n"."""
    with pytest.raises(CommandError, match="sessionId"):
        await commands.start_run(tenant_id="t1", session_id="abc\n", run_id="r", message="m")
