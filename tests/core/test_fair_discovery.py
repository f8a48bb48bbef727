"""Due runs are found in turns across tenants: against a model of the rule (a run's turn is its
rank among its tenant's due runs, oldest first, plus that tenant's runs already in flight; turns
first, then age; nobody past ``per_tenant``), for any backlog, in-flight counts and limits."""

from __future__ import annotations

import asyncio

import psycopg
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from agentlane.db import Database
from agentlane.run_index import RunIndex

TENANTS = ["a", "b", "c", "d"]

backlogs = st.dictionaries(st.sampled_from(TENANTS), st.integers(0, 12), min_size=1)
in_flight = st.dictionaries(st.sampled_from(TENANTS), st.integers(0, 6))


def _expected(
    ages: dict[str, float], running: dict[str, int], limit: int, per_tenant: int
) -> list[str]:
    """The rule, written plainly: ``ages`` maps execution id (``tenant-n``) to seconds overdue."""
    turns = []
    for tenant in {ex.split("-")[0] for ex in ages}:
        mine = sorted((ex for ex in ages if ex.startswith(f"{tenant}-")), key=lambda e: -ages[e])
        for rank, ex in enumerate(mine, start=1):
            turn = rank + running.get(tenant, 0)
            if turn <= per_tenant:
                turns.append((turn, -ages[ex], ex))
    return [ex for _, _, ex in sorted(turns)[:limit]]


@settings(
    max_examples=40, deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    backlog=backlogs, running=in_flight, limit=st.integers(1, 20), per_tenant=st.integers(1, 10),
    data=st.data(),
)
@example(backlog={"a": 12, "b": 1}, running={"a": 3}, limit=2, per_tenant=10, data=None)
def test_due_runs_come_in_turns_across_tenants(
    loop_and_db: tuple[asyncio.AbstractEventLoop, Database], database_url: str,
    backlog: dict[str, int], running: dict[str, int], limit: int, per_tenant: int,
    data: st.DataObject | None,
) -> None:
    loop, db = loop_and_db
    executions = [f"{t}-{n}" for t, count in backlog.items() for n in range(count)]
    if data is None:  # the explicit example: b's one run is the newest of all
        ages = {ex: 100.0 - i for i, ex in enumerate(executions)}
    else:
        distinct = st.lists(st.integers(1, 10_000), min_size=len(executions),
                            max_size=len(executions), unique=True)
        ages = dict(zip(executions, map(float, data.draw(distinct)), strict=True))
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM run_index")
        for n, ex in enumerate(executions):
            # Each run heads its own session, so every one is eligible.
            conn.execute(
                "INSERT INTO run_index (execution_id, tenant_id, session_id, run_id, shard_id, "
                "accepted_seq, status, wake_at) VALUES (%s, %s, %s, %s, %s, 1, 'queued', "
                "now() - make_interval(secs => %s))",
                (ex, ex.split("-")[0], ex, ex, n % 4, ages[ex]),
            )
    found = loop.run_until_complete(RunIndex(db).find_due(
        [0, 1, 2, 3], busy=[], limit=limit, running=running, per_tenant=per_tenant,
    ))
    assert [run.execution_id for run in found] == _expected(ages, running, limit, per_tenant)
