"""Projector throughput and lag, each against a baseline run side by side.

    python benchmarks/projector_throughput.py [--events 20000] [--sessions 200]
        [--rate 500] [--seconds 15] [--rounds 3] [--no-pubsub]

Prints:
- read models: events/s the projector's follower catches up at (its read-ahead, then per batch a
  transaction: checkpoint CAS + seq ordering + fold + upserts), vs. the bare gap-safe tail read
  of the same events (the baseline: what any tailer pays before doing anything), and the ratio;
- Pub/Sub (Google's emulator, when installed): events/s through EventPublisher (ordering keys,
  every request awaited) vs. a bare unordered publish of the same messages with the library's
  batching client, ``--rounds`` alternating rounds after a warm-up of each;
- lag under a steady write load (``--rate`` events/s in appends of 10 for ``--seconds``) with a
  live projector: p50/p99/max of the ``read_models`` and ``publish`` lag in seconds (sampled every
  50 ms: now - oldest event after the checkpoint, the exported metric).
Durability is on (fsync): a fresh embedded PostgreSQL per run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prometheus_client import CollectorRegistry

from agentlane.bus.clients import publisher_client
from agentlane.bus.codec import attributes, encode
from agentlane.cli.pubsub_emulator import PubSubEmulator, emulator_available
from agentlane.db import Database, open_database
from agentlane.readmodels import READ_MODELS_CHECKPOINT, apply_events
from agentlane.records import Checkpoint, NewEvent, StoredEvent, TailedEvent
from agentlane.store import Checkpoints, EventStore, Follower, Tail
from benchmarks._load import load_average
from benchmarks._pg import benchmark_database
from projector import PUBLISH_CHECKPOINT, EventPublisher, Projector, ProjectorOptions

BATCH = 1000


def run_chunks(sessions: int, events: int, tag: str) -> list[list[NewEvent]]:
    chunks = []
    for i in range(events // 10):
        session = f"s{i % sessions:04d}"
        execution = f"ex{tag}{i}"
        chunks.append(
            [NewEvent("t1", session, "RunAccepted", {"runId": execution, "message": "hi"},
                      execution_id=execution)]
            + [NewEvent("t1", session, "Token", {"text": "tok ", "index": k},
                        execution_id=execution) for k in range(7)]
            + [NewEvent("t1", session, "Usage", {"model": "m", "inputTokens": 5,
                                                 "outputTokens": 7}, execution_id=execution),
               NewEvent("t1", session, "Completed", {"answer": "a"}, execution_id=execution)]
        )
    return chunks


async def fill(store: EventStore, chunks: list[list[NewEvent]]) -> None:
    for start in range(0, len(chunks), 10):
        await store.append_batch([e for c in chunks[start:start + 10] for e in c])


async def tail_all(tail: Tail) -> list[list[StoredEvent]]:
    batches, position = [], Checkpoint()
    while batch := await tail.read(position, limit=BATCH):
        batches.append([t.event for t in batch])
        position = batch[-1].position
    return batches


async def _never(_: Checkpoint | None) -> Checkpoint:
    raise AssertionError("catch_up does not resume")


async def bench_read_models(
    db: Database, store: EventStore
) -> tuple[float, float, list[list[StoredEvent]]]:
    tail = Tail(db)
    start = time.perf_counter()
    batches = await tail_all(tail)
    baseline = time.perf_counter() - start
    total = sum(len(b) for b in batches)

    async def handle(batch: list[TailedEvent], after: Checkpoint) -> None:
        async with db.transaction() as conn:
            await Checkpoints.advance(conn, READ_MODELS_CHECKPOINT, after, batch[-1].position)
            await apply_events(conn, store, [t.event for t in batch])

    # The projector's own follower (its read-ahead included), catching up on the backlog.
    follower = Follower(tail, handle, name="bench", resume=_never, batch_size=BATCH)
    start = time.perf_counter()
    await follower.catch_up(Checkpoint())
    projector = time.perf_counter() - start
    return total / baseline, total / projector, batches


async def bench_pubsub(
    host: str, batches: list[list[StoredEvent]], rounds: int
) -> list[tuple[float, float]]:
    """Per round: (bare unordered, EventPublisher) events/s, alternating, after one warm-up
    round of each (a cold emulator made whichever ran first look slow)."""
    total = sum(len(b) for b in batches)
    project = f"bench-{uuid.uuid4().hex[:8]}"
    bare = publisher_client(host)
    bare_topic = f"projects/{project}/topics/bare"
    await asyncio.to_thread(bare.create_topic, name=bare_topic)

    async def bare_round() -> float:
        start = time.perf_counter()
        for batch in batches:
            futures = [bare.publish(bare_topic, encode(e), **attributes(e)) for e in batch]
            for future in futures:
                await asyncio.wrap_future(future)
        return total / (time.perf_counter() - start)

    results = []
    try:
        async with EventPublisher(project=project, topic="ordered", emulator_host=host,
                                  create_topic=True) as publisher:
            await publisher.ensure_topic()

            async def ordered_round() -> float:
                start = time.perf_counter()
                for batch in batches:
                    await publisher.publish(batch)
                return total / (time.perf_counter() - start)

            await bare_round()
            await ordered_round()
            for _ in range(rounds):
                results.append((await bare_round(), await ordered_round()))
    finally:
        bare.stop()
    return results


def percentiles(samples: list[float]) -> str:
    if not samples:
        return "no samples"
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (f"p50 {statistics.median(ordered) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
            f"max {ordered[-1] * 1000:.0f} ms")


async def bench_lag(db: Database, store: EventStore, host: str | None, rate: float,
                    seconds: float, sessions: int) -> dict[str, list[float]]:
    publisher = None
    if host:
        publisher = EventPublisher(project=f"lag-{uuid.uuid4().hex[:8]}", topic="events",
                                   emulator_host=host, create_topic=True)
    samples: dict[str, list[float]] = {READ_MODELS_CHECKPOINT: [], PUBLISH_CHECKPOINT: []}
    checkpoints = Checkpoints(db)
    projector = Projector(db=db, holder="bench", publisher=publisher,
                          options=ProjectorOptions(lease_ttl_s=10, batch_size=BATCH, poll_s=0.5),
                          registry=CollectorRegistry())
    async with projector:
        for _ in range(400):
            if projector.lease is not None:
                break
            await asyncio.sleep(0.05)
        chunks = run_chunks(sessions, int(rate * seconds), tag="lag")
        stop = asyncio.Event()

        async def sample() -> None:
            while not stop.is_set():
                for name in samples if publisher else [READ_MODELS_CHECKPOINT]:
                    position = await checkpoints.position(name)
                    samples[name].append(position.lag_s)
                await asyncio.sleep(0.05)

        sampler = asyncio.create_task(sample())
        interval = 10 / rate
        begin = time.perf_counter()
        for i, chunk in enumerate(chunks):
            await store.append_batch(chunk)
            delay = begin + (i + 1) * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        stop.set()
        await sampler
    return samples


async def main(args: argparse.Namespace) -> None:
    with benchmark_database(shards=16) as url:
        async with open_database(url, name="bench", min_size=2, max_size=10) as db:
            store = EventStore(db, shards=16)
            await fill(store, run_chunks(args.sessions, args.events, tag="f"))
            tail_rate, apply_rate, batches = await bench_read_models(db, store)
            read_models = await Checkpoints(db).load(READ_MODELS_CHECKPOINT)
            async with db.connection() as conn:
                # The lag run measures a steady state, not the backlog of the throughput runs.
                await Checkpoints.set(conn, PUBLISH_CHECKPOINT, read_models)
            print(f"read models: {apply_rate:,.0f} events/s applied vs bare tail read "
                  f"{tail_rate:,.0f} events/s (ratio {apply_rate / tail_rate:.2f}; "
                  f"{load_average()})")
            emulator = None
            if args.pubsub and emulator_available():
                emulator = PubSubEmulator(Path(tempfile.mkdtemp(prefix="bench-pubsub-")))
                emulator.start()
            try:
                if emulator is not None:
                    rounds = await bench_pubsub(emulator.host_port, batches, args.rounds)
                    for bare_rate, ordered_rate in rounds:
                        print(f"pubsub: {ordered_rate:,.0f} events/s ordered by session vs bare "
                              f"unordered publish {bare_rate:,.0f} events/s "
                              f"(ratio {ordered_rate / bare_rate:.2f}; {load_average()})")
                    ratios = sorted(ordered / bare for bare, ordered in rounds)
                    print(f"pubsub: median ratio {statistics.median(ratios):.2f} "
                          f"over {len(rounds)} alternating rounds")
                else:
                    print("pubsub: skipped (emulator not installed or --no-pubsub)")
                samples = await bench_lag(db, store, emulator.host_port if emulator else None,
                                          args.rate, args.seconds, args.sessions)
                print(f"lag at {args.rate:.0f} events/s for {args.seconds:.0f}s: read models "
                      f"{percentiles(samples[READ_MODELS_CHECKPOINT])} ({load_average()})")
                if samples[PUBLISH_CHECKPOINT]:
                    print(f"lag at {args.rate:.0f} events/s: publish "
                          f"{percentiles(samples[PUBLISH_CHECKPOINT])}")
            finally:
                if emulator is not None:
                    emulator.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rounds", type=int, default=3, help="alternating Pub/Sub rounds (3)")
    parser.add_argument("--no-pubsub", dest="pubsub", action="store_false")
    asyncio.run(main(parser.parse_args()))
