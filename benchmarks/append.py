"""Append throughput of the event store against a bare INSERT on the same server.

    python benchmarks/append.py [--events 2000] [--batches 200] [--rounds 3]

Prints, side by side and interleaved in rounds (so background load hits both alike):
- single-event append (head lock + hash chain + insert + NOTIFY, one transaction per event) vs.
  a bare ``BEGIN; INSERT the same row; COMMIT`` into the same table: events/s and the ratio
  (docs/design.md target: ratio >= 0.6);
- batched append, 100 events per transaction: events/s (target >= 20,000 events/s on 2 cores).
Durability is on (fsync, synchronous_commit): these are the costs a real deployment pays.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg

from agentlane.db import open_database
from agentlane.records import NewEvent
from agentlane.store import EventStore
from benchmarks._load import load_average
from benchmarks._pg import benchmark_database

DATA = {"text": "hello world, a token batch", "index": 0}


async def bare_inserts(conn: psycopg.AsyncConnection, session: str, count: int) -> float:
    payload = json.dumps(DATA)
    started = time.perf_counter()
    for seq in range(1, count + 1):
        async with conn.transaction():
            await conn.execute(
                "INSERT INTO agent_events (tenant_id, session_id, seq, event_type, payload, "
                "prev_hash, hash) VALUES ('bench', %s, %s, 'Token', %s::jsonb, %s, %s)",
                (session, seq, payload, b"\0" * 32, b"\0" * 32),
            )
    return count / (time.perf_counter() - started)


async def single_appends(store: EventStore, session: str, count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        await store.append(NewEvent("bench", session, "Token", DATA))
    return count / (time.perf_counter() - started)


async def batched_appends(store: EventStore, session: str, batches: int, size: int = 100) -> float:
    events = [NewEvent("bench", session, "Token", DATA)] * size
    started = time.perf_counter()
    for _ in range(batches):
        await store.append_batch(events)
    return batches * size / (time.perf_counter() - started)


async def main(url: str, events: int, batches: int, rounds: int) -> None:
    bare, single, batched = [], [], []
    async with open_database(url, name="bench", min_size=2, max_size=4) as db:
        store = EventStore(db, shards=64)
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            await single_appends(store, "warmup", 200)
            for r in range(rounds):
                bare.append(await bare_inserts(conn, f"bare-{r}", events))
                single.append(await single_appends(store, f"single-{r}", events))
                batched.append(await batched_appends(store, f"batch-{r}", batches))
                print(
                    f"round {r + 1}: bare {bare[-1]:,.0f}/s  append {single[-1]:,.0f}/s  "
                    f"batched {batched[-1]:,.0f} events/s  ({load_average()})",
                    flush=True,
                )
    b, s, t = (statistics.median(x) for x in (bare, single, batched))
    print()
    print(f"{'measure (median of rounds)':42} {'events/s':>12}   ({load_average()} at the end)")
    print(f"{'bare INSERT; COMMIT (baseline)':42} {b:>12,.0f}")
    print(f"{'EventStore.append, one event per txn':42} {s:>12,.0f}")
    print(f"{'ratio append / baseline (target >= 0.6)':42} {s / b:>12.2f}")
    print(f"{'EventStore.append_batch, 100 per txn':42} {t:>12,.0f}   (target >= 20,000)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database-url", help="an existing, migrated database (default: embedded)")
    args = parser.parse_args()
    if args.database_url:
        asyncio.run(main(args.database_url, args.events, args.batches, args.rounds))
    else:
        with benchmark_database() as url:
            asyncio.run(main(url, args.events, args.batches, args.rounds))
