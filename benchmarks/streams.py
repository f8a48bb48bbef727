"""Concurrent token streams on one runner: what the write path costs as the number of streams grows.

    python benchmarks/streams.py [--streams 10,100,500] [--tokens 400] [--rate 100]

For each N, N runs are accepted and advanced at once through the engine (``Executor.advance``, a
real fence per shard, the runner's pool of 10 connections), each a one-step workflow whose activity
streams ``--tokens`` tokens at ``--rate`` tokens/s through the agent's own :class:`TokenBatcher`
(a Token event about every 50 ms, urgent, as a model's stream makes them). The model is an
in-process emitter, not the loopback HTTP server: at 500 streams x 100 tokens/s the openai SDK's
parsing alone would need more than this machine's two cores, and it is not the write path being
measured. Each token carries its emit time, so its latency to the commit that made it readable
(the tail, a socket) is exact; the gateway's fan-out after that is ``ws_latency.py``'s.

Printed per N, with the load average: commits/s (database-wide, counted after every pool
connection flushed its statistics), Token rows/s, WAL bytes/s, the process's CPU share, the
store's transactions per batch of events (group commit), and token latency p50/p99 from emit
to commit. The baseline printed beside it is the same streams written with one transaction per
flush (no tick, ``max_in_flight`` = pool size, so grouping is rare): what the write path did
before group commit, in the same run. Durability is on (fsync, synchronous_commit).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agentlane.commands import Commands
from agentlane.db import Database, open_database
from agentlane.leases import Fence
from agentlane.records import StoredEvent
from agentlane.run_index import RunIndex
from agentlane.store import EventStore
from benchmarks._pg import benchmark_database
from benchmarks.engine_runs import accept, claim_all, commits, counting_overhead
from runners.agent.tokens import TokenBatcher
from runners.api import DueRun, Outcome
from runners.engine import Executor, StepInfo, WorkflowContext, WorkflowRegistry

POOL = 10
#: Tokens are emitted in this many bursts per second (each of rate/BURSTS tokens): a model's
#: chunks arrive in bursts too, and one task wake-up per token would measure asyncio, not us.
BURSTS = 20


class LatencyProbe:
    """Collects, for every Token event a flush commits, each token's emit-to-commit latency."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.rows = 0

    def committed(self, written: list[StoredEvent]) -> None:
        now = time.perf_counter()
        for event in written:
            if event.type == "Token":
                self.rows += 1
                self.latencies.extend(now - float(t) for t in event.data["text"].split())


class ProbedStore(EventStore):
    """The event store, telling the probe what each append committed (after the commit)."""

    def __init__(self, db: Database, probe: LatencyProbe, *, grouped: bool) -> None:
        super().__init__(db, shards=64, max_in_flight=2 if grouped else POOL)
        self._probe = probe
        self._grouped = grouped

    async def append_batch(self, events: Any, **kwargs: Any) -> list[StoredEvent]:
        if not self._grouped:
            kwargs["deferrable"] = False
        written = await super().append_batch(events, **kwargs)
        self._probe.committed(written)
        return written


def streaming_workflow(tokens: int, rate: float) -> WorkflowRegistry:
    per_burst = max(1, round(rate / BURSTS))

    async def emit(step: StepInfo) -> str:
        batcher = TokenBatcher(step)
        sent = 0
        while sent < tokens:
            for _ in range(min(per_burst, tokens - sent)):
                batcher.add(f" {time.perf_counter():.6f}")
                sent += 1
            await asyncio.sleep(per_burst / rate)
        batcher.close()
        return "done"

    async def workflow(ctx: WorkflowContext, payload: dict[str, Any]) -> str:
        return str(await ctx.activity("model", emit))

    registry = WorkflowRegistry()
    registry.register("agent", "1", workflow)
    return registry


async def wal_lsn(db: Database) -> int:
    async with db.connection() as conn:
        row = await (
            await conn.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")
        ).fetchone()
    assert row is not None
    return int(row[0])


async def stream_round(
    db: Database, fences: dict[int, Fence], tag: str, streams: int, args: argparse.Namespace,
    *, grouped: bool,
) -> dict[str, float]:
    probe = LatencyProbe()
    store = ProbedStore(db, probe, grouped=grouped)
    commands = Commands(store, RunIndex(db))
    due = await accept(commands, tag, streams)
    executor = Executor(store, RunIndex(db), streaming_workflow(args.tokens, args.rate))

    async def one(run: DueRun) -> None:
        outcome = await executor.advance(
            run, fences[run.shard_id], wake=asyncio.Event(), stop=asyncio.Event()
        )
        assert outcome is Outcome.COMPLETED, outcome

    before_commits, before_wal = await commits(db, POOL), await wal_lsn(db)
    groups, batches = store.committer.groups, store.committer.batches
    cpu, started = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one(run) for run in due))
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    used = await commits(db, POOL) - before_commits - counting_overhead(POOL)
    wal = await wal_lsn(db) - before_wal
    latencies = sorted(probe.latencies)
    assert len(latencies) == streams * args.tokens, (len(latencies), streams * args.tokens)
    return {
        "commits/s": used / elapsed,
        "token rows/s": probe.rows / elapsed,
        "WAL KB/s": wal / elapsed / 1024,
        "CPU share": cpu / elapsed,
        "batches per transaction": (store.committer.batches - batches)
        / max(1, store.committer.groups - groups),
        "latency p50 ms": statistics.median(latencies) * 1000,
        "latency p99 ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "load": os.getloadavg()[0],
    }


async def main(url: str, args: argparse.Namespace) -> None:
    async with open_database(url, name="bench", min_size=POOL, max_size=POOL) as db:
        fences = await claim_all(db)
        await stream_round(db, fences, "warm", 10, _short(args), grouped=True)
        results: list[tuple[int, dict[str, float], dict[str, float]]] = []
        for n in args.streams:
            grouped = await stream_round(db, fences, f"g{n}", n, args, grouped=True)
            alone = await stream_round(db, fences, f"a{n}", n, args, grouped=False)
            results.append((n, grouped, alone))
            print(f"N={n}: grouped {_line(grouped)}\n      baseline {_line(alone)}", flush=True)
    print()
    print(f"tokens per stream {args.tokens} at {args.rate:.0f}/s, pool {POOL}, cpus "
          f"{os.cpu_count()}; baseline: one transaction per flush (no grouping)")
    header = f"{'measure':28}" + "".join(f"{'N=' + str(n):>22}" for n, _, _ in results)
    print(header)
    print(f"{'':28}" + "".join(f"{'grouped / baseline':>22}" for _ in results))
    for key in results[0][1]:
        if key == "load":
            continue
        cells = "".join(f"{_fmt(g[key]) + ' / ' + _fmt(a[key]):>22}" for _, g, a in results)
        print(f"{key:28}{cells}")
    loads = "".join(f"{_fmt(g['load']) + ' / ' + _fmt(a['load']):>22}" for _, g, a in results)
    print(f"{'load average (1 min)':28}{loads}")


def _line(figures: dict[str, float]) -> str:
    return ", ".join(f"{key} {_fmt(value)}" for key, value in figures.items())


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.2f}"


def _short(args: argparse.Namespace) -> argparse.Namespace:
    return argparse.Namespace(**{**vars(args), "tokens": 40})


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--streams", type=lambda s: [int(x) for x in s.split(",")], default=[10, 100, 500]
    )
    parser.add_argument("--tokens", type=int, default=400, help="tokens per stream (400)")
    parser.add_argument("--rate", type=float, default=100.0, help="tokens/s per stream (100)")
    parser.add_argument("--database-url", help="an existing, migrated database (default: embedded)")
    cli = parser.parse_args()
    if cli.database_url:
        asyncio.run(main(cli.database_url, cli))
    else:
        with benchmark_database() as database_url:
            asyncio.run(main(database_url, cli))
