"""WAL and append speed of the event log's createdAt indexes: a btree on every event (before
``ddl/0043``) vs a BRIN index plus a btree over run ends only (after), side by side.

    python benchmarks/index_wal.py [--rounds 3] [--batches 150]

One durable embedded PostgreSQL (fsync on), migrated; each round builds one layout (the other's
indexes dropped, a CHECKPOINT so both start alike), then writes ``--batches`` batches of 100 Token
events through the store, and 64 concurrent writers 40 single events each. Prints events/s and
WAL bytes per event of each, alternating layouts, with the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agentlane.db import Database, open_database
from agentlane.records import NewEvent
from agentlane.store import EventStore
from benchmarks._load import load_average
from benchmarks._pg import benchmark_database

DATA = {"text": "hello world, a token batch", "index": 0, "step": 1, "attempt": 1}
_ALL = ("agent_events_created_at", "agent_events_created_at_brin", "agent_events_ends_created_at")
LAYOUTS = {
    "btree on every event": [
        "CREATE INDEX agent_events_created_at ON agent_events (created_at)",
    ],
    "BRIN + btree of ends": [
        "CREATE INDEX agent_events_created_at_brin ON agent_events USING brin (created_at) "
        "WITH (autosummarize = on)",
        "CREATE INDEX agent_events_ends_created_at ON agent_events (created_at) "
        "WHERE event_type IN ('Completed', 'Failed', 'Cancelled')",
    ],
}


async def wal_position(db: Database) -> int:
    async with db.connection() as conn:
        row = await (await conn.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")).fetchone()
    assert row is not None
    return int(row[0])


async def use_layout(db: Database, statements: list[str]) -> None:
    async with db.connection() as conn:
        for name in _ALL:
            await conn.execute(f"DROP INDEX IF EXISTS {name}")
        for statement in statements:
            await conn.execute(statement)
        await conn.execute("CHECKPOINT")


async def batched(store: EventStore, db: Database, tag: str, batches: int) -> tuple[float, float]:
    events = [NewEvent("bench", f"b-{tag}", "Token", DATA, execution_id=f"b-{tag}")] * 100
    wal, started = await wal_position(db), time.perf_counter()
    for _ in range(batches):
        await store.append_batch(events)
    elapsed = time.perf_counter() - started
    return batches * 100 / elapsed, (await wal_position(db) - wal) / (batches * 100)


async def concurrent(store: EventStore, db: Database, tag: str) -> tuple[float, float]:
    writers, each = 64, 40

    async def writer(index: int) -> None:
        for _ in range(each):
            await store.append(
                NewEvent("bench", f"c-{tag}-{index}", "Token", DATA, execution_id=f"c-{tag}")
            )

    wal, started = await wal_position(db), time.perf_counter()
    await asyncio.gather(*(writer(i) for i in range(writers)))
    elapsed = time.perf_counter() - started
    return writers * each / elapsed, (await wal_position(db) - wal) / (writers * each)


async def main(args: argparse.Namespace) -> None:
    with benchmark_database() as url:
        async with open_database(url, name="bench", min_size=4, max_size=10) as db:
            store = EventStore(db, shards=64)
            await batched(store, db, "warm", 20)
            figures: dict[str, list[tuple[float, float, float, float]]] = {n: [] for n in LAYOUTS}
            for round_ in range(1, args.rounds + 1):
                for name, statements in LAYOUTS.items():
                    await use_layout(db, statements)
                    rate, wal = await batched(store, db, f"{name[:5]}{round_}", args.batches)
                    c_rate, c_wal = await concurrent(store, db, f"{name[:5]}{round_}")
                    figures[name].append((rate, wal, c_rate, c_wal))
                    print(f"round {round_}  {name:<22} batched {rate:>8,.0f} events/s "
                          f"{wal:>5.0f} B WAL/event | 64 writers {c_rate:>7,.0f} events/s "
                          f"{c_wal:>5.0f} B WAL/event   {load_average()}", flush=True)
    before, after = (figures[name] for name in LAYOUTS)
    for column, label in ((1, "batched WAL/event"), (3, "64 writers WAL/event"),
                          (0, "batched events/s"), (2, "64 writers events/s")):
        old = statistics.median(row[column] for row in before)
        new = statistics.median(row[column] for row in after)
        print(f"median {label:<22} {old:>9,.0f} -> {new:>9,.0f}  ({new / old:.2f})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batches", type=int, default=150)
    asyncio.run(main(parser.parse_args()))
