"""Appends with idempotency keys (run starts) under concurrency: shared look-ups vs one each.

    python benchmarks/keyed_appends.py [--concurrency 64] [--seconds 4] [--rounds 3]

Every run start appends ``RunAccepted`` with its run's idempotency key, and the store looks the
key up first. Writers (``--concurrency`` of them, one store, closed loop, fresh keys) append for
``--seconds``; each round runs the store as it is (concurrent look-ups share queries, see
``agentlane/store/lookups.py``) and the baseline (every look-up its own query), alternating on the
same durable server. Prints appends/s, look-up queries per append and the ratio, with the load.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agentlane.db import open_database
from agentlane.records import NewEvent
from agentlane.store import EventStore
from benchmarks._load import load_average
from benchmarks._pg import benchmark_database

_names = itertools.count()


async def keyed_appends(store: EventStore, concurrency: int, seconds: float) -> tuple[float, float]:
    """Appends/s and look-up queries per append over ``seconds``."""
    stop = time.perf_counter() + seconds
    done = 0
    queries = store.key_lookups.queries

    async def writer(index: int) -> None:
        nonlocal done
        while time.perf_counter() < stop:
            run = f"r{next(_names)}"
            await store.append(NewEvent(
                "bench", f"s{index}-{run}", "RunAccepted", {"runId": run, "message": "hi"},
                execution_id=run, idempotency_key=f"run:{run}",
            ))
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(writer(i) for i in range(concurrency)))
    elapsed = time.perf_counter() - started
    return done / elapsed, (store.key_lookups.queries - queries) / max(done, 1)


async def main(args: argparse.Namespace) -> None:
    with benchmark_database() as url:
        async with open_database(url, name="bench", min_size=4, max_size=10) as db:
            shared = EventStore(db, shards=64)
            alone = EventStore(db, shards=64)
            # The baseline: no look-up ever waits for another one's query.
            alone.key_lookups.max_in_flight = 10**9
            await keyed_appends(shared, args.concurrency, 1.0)  # warm-up
            rates: dict[str, list[float]] = {"shared": [], "alone": []}
            print(f"concurrency={args.concurrency} seconds={args.seconds}")
            print(f"{'round':>5}  {'store':<8} {'appends/s':>10} {'queries/append':>15}")
            for round_ in range(1, args.rounds + 1):
                for name, store in (("shared", shared), ("alone", alone)):
                    rate, per = await keyed_appends(store, args.concurrency, args.seconds)
                    rates[name].append(rate)
                    print(f"{round_:>5}  {name:<8} {rate:>10,.0f} {per:>15.2f}   {load_average()}")
            shared_rate = statistics.median(rates["shared"])
            alone_rate = statistics.median(rates["alone"])
            print(
                f"median: shared {shared_rate:,.0f} / one query each {alone_rate:,.0f} appends/s"
                f" = {shared_rate / alone_rate:.2f}   {load_average()}"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=3)
    asyncio.run(main(parser.parse_args()))
