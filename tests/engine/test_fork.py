"""Forking a session (issue 22): the fork's first event references the parent at a cut, and a run in
the fork continues from the parent's state there (its history), never touching the parent."""

from __future__ import annotations

import asyncio

import pytest

from agentlane.errors import CommandError, EventNotFound, SessionExists
from agentlane.replay.verify import verify
from agentlane.store.audit import EventFilter, snapshot
from runners.api import DueRun, Outcome
from tests.engine.conftest import Harness, model_messages, offline_executor


async def _completed_run(harness: Harness, run_id: str, message: str) -> DueRun:
    run = await harness.start(run_id, message)
    assert await harness.advance(offline_executor(harness), run) is Outcome.COMPLETED
    return run


async def _seen_history(harness: Harness, run: DueRun) -> list[str]:
    """What the model is shown before the run's message (the session's earlier exchanges)."""
    seen = await model_messages(harness, offline_executor(harness), run)
    return [m["content"] for m in seen[0] if m["role"] != "system"][:-1]


async def test_a_run_in_a_fork_continues_from_the_parents_state_at_the_cut(
    harness: Harness, database_url: str
) -> None:
    await _completed_run(harness, "r1", "my name is Ada")
    cut = (await harness.store.read_session(harness.tenant, "s-1"))[-1]  # r1's Completed
    await _completed_run(harness, "r2", "I live in Paris")
    parent_before = await harness.store.read_session(harness.tenant, "s-1")

    forked = await harness.commands.fork_session(
        tenant_id=harness.tenant, session_id="s-1", at_event_id=cut.event_id,
        new_session_id="s-1-what-if",
    )
    assert forked.seq == 1 and forked.type == "SessionForked" and forked.execution_id is None
    assert forked.data["parentSessionId"] == "s-1" and forked.data["atSeq"] == cut.seq
    # The hash of the parent's event at the cut, inside the fork's own chain.
    at = await harness.store.event_at(harness.tenant, "s-1", cut.event_id)
    assert at is not None and forked.data["parentHash"] == at[1].hex()

    harness.session = "s-1-what-if"
    run = await harness.start("f1", "where do I live?")
    # The fork's history is the parent's up to the cut: r1, not r2 (after the cut).
    assert await _seen_history(harness, run) == [
        "my name is Ada", "(offline) You said: my name is Ada",
    ]
    # A second run in the fork sees the parent's part and the fork's own.
    second = await harness.start("f2", "and now?")
    assert await _seen_history(harness, second) == [
        "my name is Ada", "(offline) You said: my name is Ada",
        "where do I live?", "(offline) You said: where do I live?",
    ]
    # A fork of the fork follows the lineage; the parent was never touched.
    fork_events = await harness.store.read_session(harness.tenant, "s-1-what-if")
    await harness.commands.fork_session(
        tenant_id=harness.tenant, session_id="s-1-what-if", at_event_id=fork_events[-1].event_id,
        new_session_id="s-1-what-if-2",
    )
    harness.session = "s-1-what-if-2"
    third = await harness.start("g1", "again")
    assert (await _seen_history(harness, third))[:2] == [
        "my name is Ada", "(offline) You said: my name is Ada",
    ]
    assert await harness.store.read_session(harness.tenant, "s-1") == parent_before
    # The auditor's verify re-folds the forks like any stream: chains, heads, journals.
    found: list[str] = []

    def audit() -> None:
        with snapshot(database_url) as conn:
            verify(conn, EventFilter(tenant_id=harness.tenant),
                   report=lambda m: found.append(m.describe()))

    await asyncio.to_thread(audit)
    assert found == []


async def test_a_fork_is_refused_where_it_cannot_be_one(harness: Harness) -> None:
    await _completed_run(harness, "r1", "hello")
    first = (await harness.store.read_session(harness.tenant, "s-1"))[0]
    fork = {"tenant_id": harness.tenant, "session_id": "s-1", "at_event_id": first.event_id}
    made = await harness.commands.fork_session(**fork, new_session_id="copy")
    # The same fork again is the same event (a safe retry); another cut into it is refused.
    assert (await harness.commands.fork_session(**fork, new_session_id="copy")) == made
    last = (await harness.store.read_session(harness.tenant, "s-1"))[-1]
    with pytest.raises(SessionExists):
        await harness.commands.fork_session(
            **{**fork, "at_event_id": last.event_id}, new_session_id="copy"
        )
    # A session with events of its own cannot become a fork (nothing written to it).
    harness.session = "busy"
    await harness.start("b1", "hi")
    before = await harness.store.read_session(harness.tenant, "busy")
    with pytest.raises(SessionExists):
        await harness.commands.fork_session(**fork, new_session_id="busy")
    assert await harness.store.read_session(harness.tenant, "busy") == before
    # An event of another session, of another tenant, or none at all: not found.
    with pytest.raises(EventNotFound):
        await harness.commands.fork_session(
            **{**fork, "at_event_id": before[0].event_id}, new_session_id="x"
        )
    with pytest.raises(EventNotFound):
        await harness.commands.fork_session(**{**fork, "tenant_id": "other"}, new_session_id="x")
    with pytest.raises(CommandError, match="must differ"):
        await harness.commands.fork_session(**fork, new_session_id="s-1")
    with pytest.raises(CommandError, match="newSessionId"):
        await harness.commands.fork_session(**fork, new_session_id="bad id")

