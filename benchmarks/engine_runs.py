"""Completed runs per second of one runner's engine, offline model, 3 steps per run.

    python benchmarks/engine_runs.py [--runs 2000] [--concurrency 64] [--rounds 3]

Each run is ``what time is it?`` on the offline model: model call → ``current_time`` tool → model
call → answer (3 journaled steps, streamed tokens, usage). Runs are accepted first (not timed), then
advanced in-process through ``Executor.advance`` with a real fence, ``concurrency`` at a time, on a
pool of ``--pool`` connections (the runner's default is 10). Printed side by side, interleaved in
rounds so background load hits both alike:
- engine: completed runs/s (target >= 300), rows and commits per run (write amplification);
- baseline: the same rows per run written with one bare ``append_batch`` per run and no engine at
  all (the floor the store sets), and the ratio engine / baseline;
- replay: journal steps replayed per second when a run with 500 completed steps resumes.
Durability is on (fsync, synchronous_commit).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prometheus_client import CollectorRegistry

from agentlane import telemetry
from agentlane.commands import Commands
from agentlane.db import Database, open_database
from agentlane.leases import Fence
from agentlane.records import NewEvent
from agentlane.run_index import RunIndex
from agentlane.settings import Settings
from agentlane.sharding import shard_for
from agentlane.store import EventStore
from benchmarks._load import load_average
from benchmarks._pg import benchmark_database
from runners.api import DueRun, Outcome
from runners.engine import Executor, StepInfo, WorkflowContext, WorkflowRegistry
from runners.workflows import build_executor

SHARDS = 64
RUNNER = "bench-runner"


async def claim_all(db: Database) -> dict[int, Fence]:
    async with db.connection() as conn:
        rows = await (
            await conn.execute(
                "UPDATE cluster_shards SET runner_id = %s, lease_token = lease_token + 1, "
                "lease_expires_at = now() + interval '1 hour' RETURNING shard_id, lease_token",
                (RUNNER,),
            )
        ).fetchall()
    return {shard: Fence(shard, RUNNER, token) for shard, token in rows}


async def commits(db: Database, pool_size: int) -> int:
    """The database's committed transactions so far, every pool connection's included.

    A backend does not publish its counters at commit: it keeps them and flushes them to
    ``pg_stat_database`` when it goes idle, at most once a second, else about 10 s later; so a
    read right after the work missed commits (it printed 2.7 per run where 4.07 was measured).
    No wait is certain. Instead each of the pool's ``pool_size`` connections, all held at once so
    that every one is reached, runs ``pg_stat_force_next_flush()``: the backend then flushes as it
    finishes the statement, before it answers. The statement reads ``pg_database`` on purpose: a
    backend with no table statistics pending skips the flush, commit counters included (measured
    on PostgreSQL 18: a connection that had only run ``SELECT 1`` reported nothing). The count
    is then read in a statement of its own (autocommit), which takes a fresh stats snapshot.
    Counting costs :func:`counting_overhead` commits, which a difference of two counts includes.
    Checked: K known commits spread over the pool count as exactly K; on this workload 3.26 per
    run, against 3.28 read after 11 s of idleness (which includes ~22 counting commits).
    """
    async with contextlib.AsyncExitStack() as held:
        conns = [await held.enter_async_context(db.connection()) for _ in range(pool_size)]
        for conn in conns:
            await conn.execute(
                "SELECT pg_stat_force_next_flush() FROM pg_database "
                "WHERE datname = current_database()"
            )
        row = await (
            await conns[0].execute(
                "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
            )
        ).fetchone()
    assert row is not None
    return int(row[0])


def counting_overhead(pool_size: int) -> int:
    """Commits that one :func:`commits` call adds to the next one's count: its read (flushed by
    the next call) and the next call's ``pool_size`` flush statements (each counts itself)."""
    return pool_size + 1


async def accept_one(commands: Commands, tag: str, index: int) -> DueRun:
    session = f"{tag}-s{index}"
    accepted = await commands.start_run(
        tenant_id="bench", session_id=session, run_id=f"{tag}-r{index}",
        message="what time is it?",
    )
    return DueRun("bench", session, accepted.execution_id, shard_for("bench", session, SHARDS))


async def accept(commands: Commands, tag: str, runs: int) -> list[DueRun]:
    return [await accept_one(commands, tag, index) for index in range(runs)]


async def engine_round(
    db: Database, commands: Commands, fences: dict[int, Fence], tag: str, runs: int,
    concurrency: int, pool_size: int,
) -> tuple[float, float, float]:
    settings = Settings.from_env({"AGENTLANE_SHARDS": str(SHARDS)})
    executor = build_executor(db, settings, CollectorRegistry())
    due = await accept(commands, tag, runs)
    gate = asyncio.Semaphore(concurrency)

    async def one(run: DueRun) -> None:
        async with gate:
            outcome = await executor.advance(
                run, fences[run.shard_id], wake=asyncio.Event(), stop=asyncio.Event()
            )
            assert outcome is Outcome.COMPLETED, outcome

    before = await commits(db, pool_size)
    started = time.perf_counter()
    await asyncio.gather(*(one(run) for run in due))
    elapsed = time.perf_counter() - started
    used = await commits(db, pool_size) - before - counting_overhead(pool_size)
    async with db.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT count(*) FROM agent_events WHERE session_id LIKE %s "
                "AND event_type <> 'RunAccepted'",
                (f"{tag}-%",),
            )
        ).fetchone()
    assert row is not None
    return runs / elapsed, row[0] / runs, used / runs


async def baseline_round(
    commands: Commands, fences: dict[int, Fence], tag: str, runs: int, concurrency: int,
    template: list[tuple[str, dict[str, Any]]],
) -> float:
    store = commands.store
    due = await accept(commands, tag, runs)
    gate = asyncio.Semaphore(concurrency)

    async def one(run: DueRun) -> None:
        async with gate:
            await store.append_batch(
                [NewEvent("bench", run.session_id, t, d, execution_id=run.execution_id)
                 for t, d in template],
                fence=fences[run.shard_id],
            )

    started = time.perf_counter()
    await asyncio.gather(*(one(run) for run in due))
    return runs / (time.perf_counter() - started)


async def replay_rate(commands: Commands, fences: dict[int, Fence], steps: int) -> float:
    async def echo(step: StepInfo, value: int) -> int:
        return value

    async def long(ctx: WorkflowContext, payload: dict[str, Any]) -> str:
        for index in range(steps):
            await ctx.activity("echo", echo, index)
        await ctx.wait_signal("go")
        return "done"

    registry = WorkflowRegistry()
    registry.register("agent", "1", long)
    executor = Executor(commands.store, commands.runs, registry)
    (run,) = await accept(commands, "replay", 1)
    fence = fences[run.shard_id]
    assert await executor.advance(
        run, fence, wake=asyncio.Event(), stop=asyncio.Event()
    ) is Outcome.SUSPENDED
    await commands.signal_run(tenant_id="bench", execution_id=run.execution_id, name="other")
    started = time.perf_counter()
    assert await executor.advance(
        run, fence, wake=asyncio.Event(), stop=asyncio.Event()
    ) is Outcome.SUSPENDED
    return steps / (time.perf_counter() - started)


async def main(url: str, runs: int, concurrency: int, rounds: int, pool_size: int) -> None:
    async with open_database(
        url, name="bench", min_size=pool_size, max_size=pool_size
    ) as db:
        store = EventStore(db, shards=SHARDS)
        commands = Commands(store, RunIndex(db))
        fences = await claim_all(db)
        await engine_round(db, commands, fences, "warm", 50, concurrency, pool_size)
        template = [
            (e.type, e.data)
            for e in await store.read_session("bench", "warm-s0")
            if e.type != "RunAccepted"
        ]
        engine, rows, txns, base = [], [], [], []
        for index in range(rounds):
            rate, row_count, commit_count = await engine_round(
                db, commands, fences, f"e{index}", runs, concurrency, pool_size
            )
            engine.append(rate)
            rows.append(row_count)
            txns.append(commit_count)
            base.append(
                await baseline_round(commands, fences, f"b{index}", runs, concurrency, template)
            )
        replay = await replay_rate(commands, fences, 500)
    e, b = statistics.median(engine), statistics.median(base)
    print(f"runs={runs} concurrency={concurrency} pool={pool_size} rounds={rounds} "
          f"({load_average()} at the end)")
    print(f"{'measure (median of rounds)':52} {'value':>12}")
    print(f"{'engine: completed runs/s (target >= 300)':52} {e:>12,.0f}")
    print(f"{'baseline: one append_batch of the same rows, runs/s':52} {b:>12,.0f}")
    print(f"{'ratio engine / baseline':52} {e / b:>12.2f}")
    print(f"{'rows written per run (besides RunAccepted)':52} {statistics.median(rows):>12.1f}")
    print(f"{'commits per run (database-wide, all statements)':52} "
          f"{statistics.median(txns):>12.1f}")
    print(f"{'replay: journal steps/s (500-step run resuming)':52} {replay:>12,.0f}")


def discarding_tracer_provider() -> Any:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    class Discard(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Discard()))
    return provider


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pool", type=int, default=10)
    parser.add_argument("--database-url", help="an existing, migrated database (default: embedded)")
    parser.add_argument(
        "--traced", action="store_true",
        help="trace every run (agentlane.telemetry, sampling all, spans batched and discarded): "
             "the cost of tracing on, without an exporter's network in the figure",
    )
    args = parser.parse_args()
    if args.traced:
        telemetry.use_provider(discarding_tracer_provider())
    if args.database_url:
        asyncio.run(main(args.database_url, args.runs, args.concurrency, args.rounds, args.pool))
    else:
        with benchmark_database(SHARDS) as url:
            asyncio.run(main(url, args.runs, args.concurrency, args.rounds, args.pool))
