"""Read models: seq order over the tail, exactly-once batches, the pure folds, the rebuild."""

from __future__ import annotations

import asyncio

import psycopg

from agentlane.db import Database
from agentlane.folds import UsageTotals, fold_usage
from agentlane.readmodels import ReadModels, apply_events
from agentlane.records import Checkpoint, NewEvent
from agentlane.store import Checkpoints, EventStore, Tail
from projector import rebuild_read_models
from tests.projector.conftest import running_projector
from tests.projector.workload import (
    assert_read_models_match_fold,
    run_events,
    wait_caught_up,
    write_workload,
)


async def test_a_session_is_folded_in_seq_order_when_the_tail_hands_out_a_later_seq_first(
    store: EventStore, db: Database, database_url: str
) -> None:
    # The slow transaction takes its id first (a write elsewhere), then appends seq 2 of "s"
    # after a faster transaction committed seq 1: the tail returns seq 2 before seq 1.
    slow = await psycopg.AsyncConnection.connect(database_url)
    async with slow.transaction():
        await store.append_in_transaction(slow, [NewEvent("t1", "side", "Token",
                                                          {"text": "", "index": 0})])
        accepted = run_events("t1", "s", "ex1", tokens=0)[0]
        await store.append_batch(accepted)
        started = await store.append_in_transaction(
            slow, [NewEvent("t1", "s", "RunStarted", {"workflow": "agent", "version": "1"},
                            execution_id="ex1")]
        )
    await slow.close()
    first = await Tail(db).read(Checkpoint(), limit=2)
    assert [(t.event.session_id, t.event.seq) for t in first] == [("side", 1), ("s", 2)]
    assert started[0].seq == 2

    async with db.transaction() as conn:
        applied = await apply_events(conn, store, [t.event for t in first])
        assert applied == 3, "seq 1 fetched at once"
    run = await ReadModels(db).get_run("t1", "ex1")
    assert run is not None and run.status == "running" and run.last_seq == 2

    rest = await Tail(db).read(first[-1].position)
    assert [(t.event.session_id, t.event.seq) for t in rest] == [("s", 1)]
    async with db.transaction() as conn:
        assert await apply_events(conn, store, [t.event for t in rest]) == 0, "already applied"
    assert await ReadModels(db).session_position("t1", "s") == 2
    await assert_read_models_match_fold(db)


async def test_usage_is_totalled_per_tenant_model_and_day(store: EventStore, db: Database) -> None:
    for chunk in run_events("t1", "a", "ex1", 2) + run_events("t1", "a", "ex2", 3):
        await store.append_batch(chunk)
    events = await store.read_session("t1", "a")
    totals = fold_usage(events)
    assert sorted(k.model for k in totals) == ["model-a", "model-b"]  # ex1 and ex2 differ
    combined = UsageTotals()
    for part in totals.values():
        combined = combined.plus(part)
    assert combined == UsageTotals(2, 12 + 13, 5, 4, (7 + 3 * 2) + (7 + 3 * 3))
    async with db.transaction() as conn:
        await apply_events(conn, store, events)
        await apply_events(conn, store, events)  # a repeat changes nothing
    assert await ReadModels(db).get_usage("t1") == totals
    assert await ReadModels(db).get_usage("t2") == {}


async def test_the_projector_counts_finished_runs_and_tokens_per_model_once(
    store: EventStore, db: Database
) -> None:
    """What the dashboard's run outcomes, token usage and spend read: each terminal and Usage
    event counted once, by the projector applying it."""
    runs = [run_events("t1", "a", f"ex{i}", i) for i in range(4)]
    async with running_projector(db, batch_size=3) as projector:
        for run in runs:
            for chunk in run:
                await store.append_batch(chunk)
        await wait_caught_up(db, timeout_s=30)
        metrics = projector.metrics
        for _ in range(100):  # counted just after the batch's commit, which the wait may see first
            if (finished := metrics.runs_finished.labels("Completed")._value.get()) >= 4:
                break
            await asyncio.sleep(0.05)
        tokens = {
            (model, kind): metrics.model_tokens.labels(model, kind)._value.get()
            for model in ("model-a", "model-b")
            for kind in ("input", "output", "cached_input")
        } | {
            (model, "cost"): metrics.model_cost.labels(model)._value.get()
            for model in ("model-a", "model-b")
        }
    assert finished == 4
    expected: dict[tuple[str, str], float] = dict.fromkeys(tokens, 0)
    for run in runs:
        (usage,) = [e for chunk in run for e in chunk if e.type == "Usage"]
        model = usage.data["model"]
        expected[model, "input"] += usage.data["inputTokens"]
        expected[model, "output"] += usage.data["outputTokens"]
        expected[model, "cached_input"] += usage.data["cachedInputTokens"]
        expected[model, "cost"] += usage.data["costMicros"]
    assert tokens == expected and sum(tokens.values()) > 0


async def test_read_models_equal_a_fresh_fold_and_a_rebuild_while_running_keeps_them_so(
    db: Database,
    owner_db: Database,
) -> None:
    async with running_projector(db, lease_ttl_s=5, batch_size=200):
        first = asyncio.create_task(write_workload(db, events=1000, sessions=30, tag="a"))
        await asyncio.sleep(0.3)
        rebuilt = await rebuild_read_models(owner_db, batch_size=300)
        assert rebuilt.events > 0
        await first
        more = asyncio.create_task(write_workload(db, events=600, sessions=30, tag="b"))
        await rebuild_read_models(owner_db)  # a second rebuild replaces the first's tables
        await more
        await wait_caught_up(db, timeout_s=30)
        runs = await assert_read_models_match_fold(db)
        assert runs == 80
    position = await Checkpoints(db).position("read_models")
    assert position.lag_events == 0 and position.lag_s == 0
