"""What blobs by reference cost and save on the append path: tool results appended with and
without a blob store, side by side, interleaved in rounds.

    python benchmarks/blobs.py [--events 300] [--rounds 3] [--large-kib 200]

Per round and mode, ``--events`` ``ToolResult`` events are appended, each in its own transaction
(as a runner's step completions commit), 8 at a time:
- small results (1 KiB, under the threshold): the cost of looking for large values at all
  (baseline: no blob store);
- large results (``--large-kib``, each distinct): inline in the log (baseline) vs written to a
  local blob directory (fsynced) with a reference in the log.
Printed: events/s, WAL bytes per event and the ratio blob store / inline. Durability is on
(fsync, synchronous_commit); the blob directory is on the same disk as the database.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agentlane.blobs import Blobs, LocalBlobStore
from agentlane.db import Database, open_database
from agentlane.records import NewEvent
from agentlane.store import EventStore
from benchmarks._load import load_average
from benchmarks._pg import benchmark_database

CONCURRENCY = 8


def results(count: int, size: int, tag: str) -> list[dict[str, object]]:
    """Distinct results of about ``size`` bytes of JSON (rows of a query, say), as little
    compressible as real rows (random hex: TOAST would shrink repeated text to nothing)."""
    generator = random.Random(tag)
    rows = max(1, size // 36)
    return [{"query": f"{tag}-{i}", "rows": [generator.randbytes(16).hex() for _ in range(rows)]}
            for i in range(count)]


async def wal_lsn(db: Database) -> int:
    async with db.connection() as conn:
        row = await (await conn.execute(
            "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn"
        )).fetchone()
    assert row is not None
    return int(row[0])


async def append_round(
    db: Database, store: EventStore, tag: str, values: list[dict[str, object]]
) -> tuple[float, float]:
    """(events/s, WAL bytes per event) for one event per transaction, CONCURRENCY sessions."""
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(index: int, value: dict[str, object]) -> None:
        async with gate:
            await store.append(NewEvent(
                "bench", f"{tag}-{index % CONCURRENCY}", "ToolResult",
                {"step": index, "callId": f"c{index}", "name": "query", "ok": True,
                 "result": value},
                execution_id=f"ex-{tag}",
            ))

    before = await wal_lsn(db)
    started = time.perf_counter()
    await asyncio.gather(*(one(i, v) for i, v in enumerate(values)))
    elapsed = time.perf_counter() - started
    return len(values) / elapsed, (await wal_lsn(db) - before) / len(values)


async def main(url: str, events: int, rounds: int, large: int) -> None:
    with tempfile.TemporaryDirectory(prefix="agentlane-blobs-") as tmp:
        async with open_database(url, name="bench", min_size=CONCURRENCY,
                                 max_size=CONCURRENCY) as db:
            inline = EventStore(db, shards=64)
            blobbed = EventStore(db, shards=64, blobs=Blobs(LocalBlobStore(Path(tmp))))
            stats: dict[tuple[str, str], list[tuple[float, float]]] = {}
            for index in range(rounds + 1):  # the first round warms up, uncounted
                for size_name, size in (("small", 1024), ("large", large * 1024)):
                    for mode, store in (("inline", inline), ("blob store", blobbed)):
                        tag = f"r{index}-{size_name}-{mode[0]}"
                        measured = await append_round(
                            db, store, tag, results(events, size, tag)
                        )
                        if index:
                            stats.setdefault((size_name, mode), []).append(measured)
    print(f"events={events} per round, rounds={rounds}, large={large} KiB, "
          f"concurrency={CONCURRENCY} ({load_average()} at the end)")
    print(f"{'result size, mode (median of rounds)':40} {'events/s':>10} {'WAL B/event':>12}")
    medians = {}
    for (size_name, mode), values in stats.items():
        rate = statistics.median(v[0] for v in values)
        wal = statistics.median(v[1] for v in values)
        medians[(size_name, mode)] = (rate, wal)
        print(f"{size_name + ', ' + mode:40} {rate:>10,.0f} {wal:>12,.0f}")
    for size_name in ("small", "large"):
        (b_rate, b_wal), (i_rate, i_wal) = (
            medians[(size_name, "blob store")], medians[(size_name, "inline")]
        )
        print(f"{size_name}: blob store / inline  events/s {b_rate / i_rate:.2f}, "
              f"WAL {b_wal / i_wal:.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--large-kib", type=int, default=200)
    args = parser.parse_args()
    with benchmark_database() as database_url:
        asyncio.run(main(database_url, args.events, args.rounds, args.large_kib))
