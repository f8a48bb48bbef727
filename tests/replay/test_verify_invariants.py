"""The journal invariants, stream heads and a lagging projector, through ``verify`` in-process
(the exit codes are proven by the subprocess tests in test_verify_tampering.py)."""

from __future__ import annotations

import psycopg

from agentlane.commands import Commands
from agentlane.records import NewEvent
from agentlane.replay.readmodel_checks import discover
from agentlane.replay.verify import Summary, verify
from agentlane.store import EventStore
from agentlane.store.audit import EventFilter, snapshot
from tests.replay.conftest import Seeded, write_run


def check(database_url: str, tenant: str | None = None) -> tuple[Summary, list[str], list[str]]:
    where = EventFilter(tenant_id=tenant)
    found: list[str] = []
    with snapshot(database_url) as conn:
        models = discover(conn, where)
        summary = verify(
            conn, where, checks=models.checks, projected_sql=models.projected_sql,
            projected_params=models.projected_params, report=lambda m: found.append(m.describe()),
        )
    return summary, found, models.notes


async def test_overlapping_runs_of_a_session_are_caught(
    commands: Commands, store: EventStore, database_url: str
) -> None:
    first = await commands.start_run(tenant_id="t", session_id="s", run_id="a", message="1")
    second = await commands.start_run(tenant_id="t", session_id="s", run_id="b", message="2")
    started = {"workflow": "agent", "version": "1"}
    await store.append(NewEvent("t", "s", "RunStarted", started, first.execution_id))
    late = await store.append(NewEvent("t", "s", "RunStarted", started, second.execution_id))
    summary, found, _ = check(database_url)
    assert found == [
        f"t/s seq 4 event {late.event.event_id}: run {second.execution_id} started while run "
        f"{first.execution_id} (accepted before it) had not ended"
    ]
    assert summary.mismatches == 1


async def test_events_after_the_end_or_before_the_start_are_caught(
    commands: Commands, store: EventStore, database_url: str
) -> None:
    ex = await write_run(commands, "t", "s", "a")
    after = await store.append(NewEvent("t", "s", "Token", {"text": "x", "index": 9}, ex))
    stray = await store.append(NewEvent("t", "s", "Token", {"text": "y", "index": 0}, "ex_nobody"))
    _, found, _ = check(database_url)
    assert found[0].startswith(
        f"t/s seq 9 event {after.event.event_id}: Token of run {ex} after its terminal event"
    )
    assert found[1] == (
        f"t/s seq 10 event {stray.event.event_id}: Token of run ex_nobody before its RunAccepted"
    )


async def test_stream_heads_must_match_the_last_event(
    commands: Commands, database_url: str
) -> None:
    await write_run(commands, "t", "s", "a")
    url = database_url
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE agent_stream_heads SET last_seq = last_seq + 1")
        conn.execute(
            "INSERT INTO agent_stream_heads (tenant_id, session_id, last_seq, last_hash) "
            "VALUES ('t', 'ghost', 3, '\\x00')"
        )
    _, found, _ = check(url)
    assert found == [
        "t/s: the stream head says last seq 9, the last event has seq 8",
        "t/ghost: a stream head (last seq 3) without events",
    ]


async def test_a_lagging_projector_is_not_a_mismatch(
    database_url: str, commands: Commands, store: EventStore, seeded: Seeded
) -> None:
    """Events after the projector's checkpoint are not in the read models yet: verify compares
    up to the checkpoint, and still catches an edit of what the projector did apply."""
    ex = seeded.runs[("default", "s2")][1]
    await store.append(NewEvent("default", "s2", "Completed", {"answer": "late"}, ex))
    await write_run(commands, "default", "s3", "r9")
    summary, found, notes = check(database_url)
    assert found == [] and summary.events == 37 + 1 + 8
    assert "the projector lags: read models compared up to its checkpoint" in notes

    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE read_runs SET answer = 'x' WHERE execution_id = %s", (ex,))
    _, found, _ = check(database_url)
    assert found == [f"default/s2: read_runs row of run {ex}: answer is 'x', the events say None"]


async def test_worker_processes_find_the_same_mismatches(
    database_url: str, commands: Commands, store: EventStore, seeded: Seeded
) -> None:
    """``--jobs 2``: two processes on one exported snapshot, streams split by range, report
    exactly what one process reports (orphans and usage included)."""
    from agentlane.replay.parallel import run_verify
    from agentlane.store.audit import partitions
    from tests.replay.conftest import event_id_of, tamper

    for number in range(6):
        await write_run(commands, "zeta", f"z{number}", f"z{number}", tokens=1)
    token = event_id_of(database_url, "default", "s2", 4)
    tamper(database_url, [
        f"UPDATE agent_events SET payload = '{{\"text\": \"?\", \"index\": 1}}' "
        f"WHERE event_id = {token}",
        "DELETE FROM agent_events WHERE tenant_id = 'zeta' AND session_id = 'z3' AND seq = 2",
        "UPDATE read_usage_daily SET calls = 99 WHERE tenant_id = 'acme'",
        "INSERT INTO agent_stream_heads VALUES ('zeta', 'orphan', 1, '\\x00', now())",
    ])
    with snapshot(database_url) as conn:
        parts = partitions(conn, EventFilter(), 2)
    assert len(parts) == 2 and parts[0].to_stream == parts[1].from_stream

    outcomes = {}
    for jobs in (1, 2):
        found: list[str] = []
        outcome = run_verify(
            database_url, EventFilter(), jobs=jobs,
            report=lambda m, found=found: found.append(m.describe()), advance=lambda n: None,
        )
        outcomes[jobs] = (sorted(found), outcome.summary)
    assert outcomes[1] == outcomes[2]
    found, summary = outcomes[2]
    assert summary.events == 37 + 6 * 6 - 1 and summary.streams == 9 and summary.mismatches == 5
    assert any(line.startswith(f"default/s2 seq 4 event {token}: hash") for line in found)
    assert any(line.startswith("zeta/z3 seq 3 ") for line in found)
    assert any("read_usage_daily" in line and "calls is 99" in line for line in found)
    assert "zeta/orphan: a stream head (last seq 1) without events" in found
