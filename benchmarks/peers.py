"""Agentlane beside its peers on one PostgreSQL server: DBOS Transact and the eventsourcing library.

    python benchmarks/peers.py [--runs 1000] [--concurrency 64] [--rounds 3] [--pool 10]
                               [--events 2000] [--batches 200]

Needs the peers: ``pip install -c constraints.txt -e ".[bench]"`` (dbos 3.4.0, eventsourcing 9.5.6).
One embedded server, durability on (fsync, synchronous_commit), holds three databases: agentlane's
(migrated), ``peers_dbos`` (DBOS's system database) and ``peers_es`` (eventsourcing's table).
Each round runs every system once, the order rotating from round to round, so background load hits
all alike; a figure is the median of the rounds, printed with the 1-minute load average taken as
each measurement ended (median of those for a median, both for a ratio), and the CPU time this
client process spent per run or event (all its threads: DBOS runs its database calls in threads).

Engine: a workflow of 3 durable steps, each returning a small int, started by id and awaited to
completion, ``--runs`` runs ``--concurrency`` at a time (the clock covers start and completion):
- agentlane: ``Commands.start_run`` (accept by run id) then ``Executor.advance`` with a real fence,
  as ``engine_runs.py`` does, on a pool of ``--pool`` connections. Steps are journaled as
  ``StepCompleted`` events and group-committed: a step's record may wait for a later write (at most
  0.5 s; here, the run's last), a crash re-running the step (activities are at-least-once);
- DBOS: ``SetWorkflowID`` + ``DBOS.start_workflow_async`` + ``get_result``, async steps, a system
  database pool of ``--pool`` connections plus the one its LISTEN thread keeps. Each step's output
  is committed before the next step runs;
- for reference, agentlane's own workload from ``engine_runs.py`` (offline agent, 3 steps with
  streamed tokens and usage; runs accepted before the clock starts).
Cost per run: write transactions (transaction ids the server assigned while one system ran, the
others idle; below 1 where the store group-commits concurrent runs' writes) and all commits
(``pg_stat_database.xact_commit`` of the system's own database, read transactions included;
DBOS's include the empty statement SQLAlchemy's pre-ping sends on every checkout, which
PostgreSQL counts as a transaction).

Appends: one writer, one event per transaction and 100 events per transaction:
- agentlane ``EventStore.append`` / ``append_batch`` (as ``append.py``: stream head lock, gap-free
  seq, hash chain, NOTIFY), through the pool;
- eventsourcing ``PostgresApplicationRecorder.insert_events`` (EXCLUSIVE table lock for a gap-free
  global notification id, NOTIFY), synchronous psycopg 3, its own pool.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import statistics
import sys
import time
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version
from pathlib import Path
from typing import Any, NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg

try:
    from dbos import DBOS, SetWorkflowID
    from eventsourcing.persistence import StoredEvent
    from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
except ImportError as missing:  # pragma: no cover - a hint, not a feature
    raise SystemExit(
        f"{missing}: install the peers with pip install -c constraints.txt -e '.[bench]'"
    ) from None

from agentlane.commands import Commands
from agentlane.db import Database, open_database
from agentlane.leases import Fence
from agentlane.run_index import RunIndex
from agentlane.store import EventStore
from benchmarks._pg import benchmark_database
from benchmarks.append import DATA, batched_appends, single_appends
from benchmarks.engine_runs import (
    SHARDS,
    accept_one,
    claim_all,
    commits,
    counting_overhead,
    engine_round,
)
from runners.api import Outcome
from runners.engine import Executor, StepInfo, WorkflowContext, WorkflowRegistry

DBOS_DB = "peers_dbos"
ES_DB = "peers_es"
STEPS = 3


class Sample(NamedTuple):
    value: float  # runs/s or events/s
    load: float  # 1-minute load average when the measurement ended
    xids: float  # transaction ids the server assigned (write transactions), per run or event
    cpu_ms: float  # this process's CPU time (every thread), per run or event


# --- the 3-step workflow, once per engine ----------------------------------------------------


async def add_one(step: StepInfo, value: int) -> int:
    return value + 1


async def three_steps(ctx: WorkflowContext, payload: dict[str, Any]) -> int:
    value = 0
    for index in range(STEPS):
        value = await ctx.activity(f"step{index}", add_one, value)
    return value


@DBOS.step()
async def dbos_add_one(value: int) -> int:
    return value + 1


@DBOS.workflow()
async def dbos_three_steps(value: int) -> int:
    for _ in range(STEPS):
        value = await dbos_add_one(value)
    return value


# --- agentlane ---------------------------------------------------------------------------------


def three_step_executor(commands: Commands) -> Executor:
    registry = WorkflowRegistry()
    registry.register("agent", "1", three_steps)  # the workflow start_run's runs name
    return Executor(commands.store, commands.runs, registry)


async def agentlane_round(
    db: Database, commands: Commands, executor: Executor, fences: dict[int, Fence], tag: str,
    runs: int, concurrency: int, pool_size: int,
) -> tuple[float, float]:
    """Runs/s and commits per run of the 3-step workflow, each run accepted then advanced."""
    gate = asyncio.Semaphore(concurrency)

    async def one(index: int) -> None:
        async with gate:
            run = await accept_one(commands, tag, index)
            outcome = await executor.advance(
                run, fences[run.shard_id], wake=asyncio.Event(), stop=asyncio.Event()
            )
            assert outcome is Outcome.COMPLETED, outcome

    before = await commits(db, pool_size)
    started = time.perf_counter()
    await asyncio.gather(*(one(index) for index in range(runs)))
    elapsed = time.perf_counter() - started
    used = await commits(db, pool_size) - before - counting_overhead(pool_size)
    return runs / elapsed, used / runs


# --- DBOS --------------------------------------------------------------------------------------


def launch_dbos(url: str, pool_size: int) -> None:
    DBOS(config={
        "name": "agentlane-peers",
        "system_database_url": url,
        # Its notification listener keeps one pool connection for LISTEN: the work gets pool_size.
        "sys_db_pool_size": pool_size + 1,
        "log_level": "WARNING",
    })
    DBOS.launch()


async def stop_dbos(url: str) -> int:
    """Destroy DBOS, wait for its server sessions to end, return its database's commits so far.

    Its sessions are SQLAlchemy's, out of reach of ``pg_stat_force_next_flush()``; a session that
    ends flushes its counters, so the count is exact once every session is gone (less the one
    commit of this function's own read, counted by the next call).
    """
    DBOS.destroy()
    # DBOS made its thread pool the loop's default executor; it is shut down now.
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor())
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        deadline = time.monotonic() + 30
        while True:
            row = await (
                await conn.execute(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ).fetchone()
            assert row is not None
            if row[0] == 0 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        # A backend may leave pg_stat_activity a moment before its exit-time flush is done.
        await asyncio.sleep(0.3)
        row = await (
            await conn.execute(
                "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
            )
        ).fetchone()
    assert row is not None
    return int(row[0])


async def dbos_round(tag: str, runs: int, concurrency: int) -> float:
    gate = asyncio.Semaphore(concurrency)

    async def one(index: int) -> None:
        async with gate:
            with SetWorkflowID(f"{tag}-{index}"):
                handle = await DBOS.start_workflow_async(dbos_three_steps, index)
            assert await handle.get_result() == index + STEPS

    started = time.perf_counter()
    await asyncio.gather(*(one(index) for index in range(runs)))
    return runs / (time.perf_counter() - started)


# --- eventsourcing -----------------------------------------------------------------------------


def es_recorder(url: str) -> PostgresApplicationRecorder:
    params = psycopg.conninfo.conninfo_to_dict(url)
    datastore = PostgresDatastore(
        dbname=str(params["dbname"]), host=str(params["host"]), port=str(params["port"]),
        user=str(params["user"]), password=str(params.get("password") or ""), pool_size=2,
    )
    recorder = PostgresApplicationRecorder(datastore)
    recorder.create_table()
    return recorder


def es_appends(recorder: PostgresApplicationRecorder, count: int, size: int) -> float:
    """Events/s of ``count`` events written ``size`` per ``insert_events`` (one transaction)."""
    stream = uuid.uuid4()
    state = json.dumps(DATA).encode()
    started = time.perf_counter()
    for first in range(1, count + 1, size):
        recorder.insert_events(
            [StoredEvent(stream, number, "Token", state) for number in range(first, first + size)]
        )
    return count / (time.perf_counter() - started)


# --- rounds and printing -----------------------------------------------------------------------

Job = Callable[[str], Awaitable[float]]


async def next_xid(db: Database) -> int:
    """The next transaction id the server will assign, cluster-wide (reading it assigns none).

    Only a transaction that writes gets an id, so the difference over a measurement counts the
    measured system's write transactions: the others are idle meanwhile (DBOS's background
    threads, which run throughout, only read when idle).
    """
    async with db.connection() as conn:
        row = await (
            await conn.execute("SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint")
        ).fetchone()
    assert row is not None
    return int(row[0])


@dataclasses.dataclass
class Systems:
    """The three systems, ready; each job takes a round's tag and returns a rate."""

    db: Database
    commands: Commands
    fences: dict[int, Fence]
    executor: Executor
    recorder: PostgresApplicationRecorder
    args: argparse.Namespace
    agent_commits: list[float] = dataclasses.field(default_factory=list)
    plain_commits: list[float] = dataclasses.field(default_factory=list)

    async def agentlane_3_step(self, tag: str) -> float:
        a = self.args
        rate, per_run = await agentlane_round(
            self.db, self.commands, self.executor, self.fences, tag, a.runs, a.concurrency, a.pool
        )
        self.plain_commits.append(per_run)
        return rate

    async def dbos_3_step(self, tag: str) -> float:
        return await dbos_round(tag, self.args.runs, self.args.concurrency)

    async def agentlane_agent(self, tag: str) -> float:
        a = self.args
        rate, _, per_run = await engine_round(
            self.db, self.commands, self.fences, tag, a.runs, a.concurrency, a.pool
        )
        self.agent_commits.append(per_run)
        return rate

    async def agentlane_append(self, tag: str) -> float:
        return await single_appends(self.commands.store, tag, self.args.events)

    async def es_append(self, tag: str) -> float:
        return es_appends(self.recorder, self.args.events, 1)

    async def agentlane_batch(self, tag: str) -> float:
        return await batched_appends(self.commands.store, tag, self.args.batches)

    async def es_batch(self, tag: str) -> float:
        return es_appends(self.recorder, self.args.batches * 100, 100)

    def groups(self) -> list[list[tuple[str, Job, int]]]:
        """(name, job, runs or events) of the jobs that compete, grouped; the order rotates
        within a group from round to round."""
        a = self.args
        return [
            [("agentlane 3-step", self.agentlane_3_step, a.runs),
             ("DBOS 3-step", self.dbos_3_step, a.runs),
             ("agentlane agent", self.agentlane_agent, a.runs)],
            [("agentlane append", self.agentlane_append, a.events),
             ("es append", self.es_append, a.events),
             ("agentlane batch", self.agentlane_batch, a.batches * 100),
             ("es batch", self.es_batch, a.batches * 100)],
        ]


def rotated(jobs: Sequence[tuple[str, Job, int]], by: int) -> list[tuple[str, Job, int]]:
    by %= len(jobs)
    return [*jobs[by:], *jobs[:by]]


async def run_rounds(systems: Systems, stamp: str, rounds: int) -> dict[str, list[Sample]]:
    samples: dict[str, list[Sample]] = {}
    for r in range(rounds):
        shown = []
        for group in systems.groups():
            for name, job, units in rotated(group, r):
                tag = f"{stamp}-{r}-{name.replace(' ', '-')}"
                before = await next_xid(systems.db)
                cpu = time.process_time()
                value = await job(tag)
                cpu_ms = (time.process_time() - cpu) * 1000 / units
                xids = (await next_xid(systems.db) - before) / units
                sample = Sample(value, os.getloadavg()[0], xids, cpu_ms)
                samples.setdefault(name, []).append(sample)
                shown.append(f"{name} {sample.value:,.0f} (load {sample.load:.2f})")
        print(f"round {r + 1}: " + ", ".join(shown), flush=True)
    return samples


def median(samples: Sequence[Sample]) -> Sample:
    return Sample(*(statistics.median(column) for column in zip(*samples, strict=True)))


def line(label: str, value: str, load: str = "", cpu: str = "") -> None:
    print(f"{label:62} {value:>10} {load:>12} {cpu:>9}")


def figure(label: str, samples: Sequence[Sample]) -> Sample:
    m = median(samples)
    line(label, f"{m.value:,.0f}", f"{m.load:.2f}", f"{m.cpu_ms:.2f}")
    return m


def ratio(label: str, a: Sample, b: Sample) -> None:
    line(label, f"{a.value / b.value:.2f}", f"{a.load:.2f} / {b.load:.2f}")


async def main(url: str, peer_urls: dict[str, str], args: argparse.Namespace) -> None:
    stamp = f"p{int(time.time())}"
    pool = args.pool
    recorder = es_recorder(peer_urls[ES_DB])
    async with open_database(url, name="bench", min_size=pool, max_size=pool) as db:
        store = EventStore(db, shards=SHARDS)
        commands = Commands(store, RunIndex(db))
        systems = Systems(db, commands, await claim_all(db), three_step_executor(commands),
                          recorder, args)
        async with db.connection() as conn:
            row = await (await conn.execute("SHOW server_version")).fetchone()
        server = row[0] if row else "?"

        # Warm-ups, not measured. DBOS is launched, warmed and stopped, then launched and stopped
        # once more (what one launch costs), then launched for the rounds: its migrations and
        # launches stay out of its commits per run.
        await engine_round(db, commands, systems.fences, f"{stamp}-warm", 50, args.concurrency,
                           pool)
        await agentlane_round(db, commands, systems.executor, systems.fences, f"{stamp}-warm3",
                              50, args.concurrency, pool)
        await single_appends(store, f"{stamp}-warm", 200)
        es_appends(recorder, 200, 1)
        launch_dbos(peer_urls[DBOS_DB], pool)
        await dbos_round(f"{stamp}-warm", 50, args.concurrency)
        dbos_warm = await stop_dbos(peer_urls[DBOS_DB])
        launch_dbos(peer_urls[DBOS_DB], pool)
        dbos_launched = await stop_dbos(peer_urls[DBOS_DB])
        launch_dbos(peer_urls[DBOS_DB], pool)
        try:
            samples = await run_rounds(systems, stamp, args.rounds)
        finally:
            dbos_after = await stop_dbos(peer_urls[DBOS_DB])
    recorder.datastore.close()
    # Each count includes the previous count's read; the launch's cost is measured in between.
    dbos_commits = (dbos_after - dbos_launched - (dbos_launched - dbos_warm)) / (
        args.rounds * args.runs
    )

    print()
    print(f"PostgreSQL {server} (fsync on), dbos {version('dbos')}, "
          f"eventsourcing {version('eventsourcing')}, {os.cpu_count()} CPUs")
    print(f"runs={args.runs} concurrency={args.concurrency} pool={pool} rounds={args.rounds} "
          f"events={args.events} batches={args.batches}x100")
    line("measure (median of rounds)", "value", "load1", "client ms")
    print("engine: 3-step workflow started by id, to completion")
    a = figure("  agentlane, start_run + Executor.advance, runs/s", samples["agentlane 3-step"])
    d = figure("  DBOS, start_workflow_async + get_result, runs/s", samples["DBOS 3-step"])
    ratio("  ratio agentlane / DBOS", a, d)
    g = figure("  agentlane offline agent (engine_runs.py workload), runs/s",
               samples["agentlane agent"])
    print("engine: cost per run")
    line("  write transactions (xids) per run, agentlane 3-step", f"{a.xids:.2f}")
    line("  write transactions (xids) per run, DBOS 3-step", f"{d.xids:.2f}")
    line("  write transactions (xids) per run, agentlane agent", f"{g.xids:.2f}")
    line("  commits (xact_commit) per run, agentlane 3-step",
         f"{statistics.median(systems.plain_commits):.2f}")
    line("  commits (xact_commit) per run, DBOS 3-step (all rounds)", f"{dbos_commits:.2f}")
    line("  commits (xact_commit) per run, agentlane agent (no accept)",
         f"{statistics.median(systems.agent_commits):.2f}")
    print("appends: one writer")
    s = figure("  agentlane EventStore.append, 1 event/txn, events/s", samples["agentlane append"])
    e = figure("  eventsourcing insert_events, 1 event/txn, events/s", samples["es append"])
    ratio("  ratio agentlane / eventsourcing", s, e)
    s = figure("  agentlane append_batch, 100 events/txn, events/s", samples["agentlane batch"])
    e = figure("  eventsourcing insert_events, 100 events/txn, events/s", samples["es batch"])
    ratio("  ratio agentlane / eventsourcing", s, e)


def with_database(url: str, name: str) -> str:
    return urllib.parse.urlsplit(url)._replace(path=f"/{name}").geturl()


@contextlib.contextmanager
def peer_databases(url: str) -> Iterator[dict[str, str]]:
    """Fresh databases for the peers on agentlane's server (dropped first if they exist)."""
    names = [DBOS_DB, ES_DB]
    with psycopg.connect(url, autocommit=True) as conn:
        for name in names:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {name}")
    yield {name: with_database(url, name) for name in names}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pool", type=int, default=10)
    parser.add_argument("--events", type=int, default=2000, help="single appends per round")
    parser.add_argument("--batches", type=int, default=200, help="100-event batches per round")
    parser.add_argument(
        "--database-url",
        help="an existing, migrated database (default: embedded); the peers' databases "
        f"{DBOS_DB} and {ES_DB} are dropped and created on its server",
    )
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        url = args.database_url or stack.enter_context(benchmark_database(SHARDS))
        peers = stack.enter_context(peer_databases(url))
        asyncio.run(main(url, peers, args))
