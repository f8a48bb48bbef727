"""A run's wall-time deadline: recorded when it is accepted, rebuilt from the events with the rest
of the work index, and expired once, by a command event."""

from __future__ import annotations

import psycopg

from agentlane.commands import BudgetCap, Commands
from agentlane.db import Database
from agentlane.run_index import RunIndex
from agentlane.store import EventStore
from tests.conftest import TEST_SHARDS


def _deadline_in(database_url: str, execution_id: str) -> float | None:
    """Seconds from the run's acceptance to its deadline (None: no deadline)."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT extract(epoch FROM r.deadline_at - e.created_at)::float8 FROM run_index r "
            "JOIN agent_events e ON e.execution_id = r.execution_id "
            "AND e.event_type = 'RunAccepted' WHERE r.execution_id = %s",
            (execution_id,),
        ).fetchone()
    assert row is not None
    return None if row[0] is None else float(row[0])


async def test_the_deadline_is_recorded_rebuilt_and_expired_once(
    db: Database, store: EventStore, commands: Commands, database_url: str
) -> None:
    capped = Commands(store, commands.runs, budget_cap=BudgetCap(seconds=3600))
    for on_conflict in ("enqueue", "reject"):  # both write paths index the deadline
        run = await capped.start_run(
            tenant_id="t", session_id=f"s-{on_conflict}", run_id=f"r-{on_conflict}",
            message="m", on_conflict=on_conflict,  # type: ignore[arg-type]
        )
        assert abs((_deadline_in(database_url, run.execution_id) or 0) - 3600) < 5
    uncapped = await commands.start_run(tenant_id="t", session_id="s2", run_id="r2", message="m")
    assert _deadline_in(database_url, uncapped.execution_id) is None

    # A rebuild of the index recomputes the deadline from the events.
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM run_index")
    await RunIndex(db).rebuild(TEST_SHARDS)
    assert abs((_deadline_in(database_url, run.execution_id) or 0) - 3600) < 1
    assert _deadline_in(database_url, uncapped.execution_id) is None

    # Past the deadline: listed as overdue, cancelled by one command, then never again.
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE run_index SET deadline_at = now() - interval '1 second', "
                     "wake_at = NULL WHERE execution_id = %s", (run.execution_id,))
    runs = RunIndex(db)
    assert [ex for _, ex in await runs.overdue(list(range(TEST_SHARDS)))] == [run.execution_id]
    first = await capped.expire_run(tenant_id="t", execution_id=run.execution_id)
    assert first is not None and first.type == "CancelRequested"
    assert first.data["reason"].startswith("deadline")
    assert await runs.overdue(list(range(TEST_SHARDS))) == []
    again = await capped.expire_run(tenant_id="t", execution_id=run.execution_id)
    assert again is None
    # The run is due at once, so its owner advances it into the cancel.
    assert await runs.status("t", run.execution_id) is not None
    with psycopg.connect(database_url) as conn:
        due = conn.execute("SELECT wake_at <= now() FROM run_index WHERE execution_id = %s",
                           (run.execution_id,)).fetchone()
    assert due == (True,)
    # After a cancel, a rebuild does not put the deadline back.
    await RunIndex(db).rebuild(TEST_SHARDS)
    assert _deadline_in(database_url, run.execution_id) is None
