"""``replay verify`` on a large event store: fold rate and peak memory, against a bare scan.

Generates N events (default 1,000,000) with a faithful bulk COPY: every row carries the hash chain
the append path would compute (``agentlane.hashchain.chain_hash`` over
``agentlane.store.event_hash_input``), event ids grow with ``seq``, and each stream has its head
row. Then, side by side on the same server:

- baseline: a bare ``SELECT`` of the same columns in the same order through a server-side cursor;
- ``agentlane replay verify`` as a subprocess (its wall time and peak RSS), once for one tenant
  (a tenth of the events) and once for everything, so the two peaks show memory does not grow.

Each line gives the client's CPU (the process and its workers) and, when the server runs on this
host, the PostgreSQL server's CPU per event: on a shared machine the wall rates swing with the
load, the CPU cost per event does not.

    .venv/bin/python -m benchmarks.replay_verify [--events 1000000] [--database-url URL]

Without ``--database-url`` it starts an embedded PostgreSQL in a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from agentlane.cli.embedded_pg import EmbeddedPostgres
from agentlane.db import open_database
from agentlane.events import validate_data
from agentlane.hashchain import GENESIS_HASH, chain_hash
from agentlane.migrate import migrate
from agentlane.records import StoredEvent
from agentlane.store import event_hash_input

TENANTS = 10
RUNS_PER_SESSION = 4
SHARDS = 64


def run_events(session: str, run: int) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """One agent run as the runners journal it: 25 events (type, execution, data)."""
    execution = f"ex_{session}_{run}"
    yield execution, "RunAccepted", {"runId": f"{session}-r{run}", "message": f"question {run}"}
    yield execution, "RunStarted", {"workflow": "agent", "version": "1"}
    for index in range(10):
        yield execution, "Token", {"text": f"tok{index} ", "index": index}
    yield execution, "StepCompleted", {"step": 0, "name": "model", "result": {"toolCalls": 1}}
    yield execution, "ToolCall", {
        "step": 1, "callId": f"call_{run}", "name": "search", "arguments": {"q": "weather"},
    }
    yield execution, "ToolResult", {
        "step": 1, "callId": f"call_{run}", "name": "search", "ok": True, "result": {"hits": [1]},
    }
    for index in range(10, 17):
        yield execution, "Token", {"text": f"tok{index} ", "index": index}
    yield execution, "StepCompleted", {"step": 2, "name": "model", "result": "sunny"}
    yield execution, "Usage", {
        "model": "offline", "inputTokens": 120, "outputTokens": 17, "cachedInputTokens": 0,
    }
    yield execution, "Completed", {"answer": f"answer {run}: sunny"}


def generate(url: str, total: int) -> int:
    """COPY ``total`` events (rounded to whole sessions) with their hash chains and heads."""
    per_session = RUNS_PER_SESSION * 25
    sessions = max(1, total // per_session)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    written = 0
    with psycopg.connect(url) as conn:
        conn.execute("SET synchronous_commit = off")
        with conn.cursor() as cursor, cursor.copy(
            "COPY agent_events (tenant_id, session_id, seq, execution_id, event_type, payload, "
            "created_at, idempotency_key, prev_hash, hash) FROM STDIN"
        ) as copy:
            heads = []
            for number in range(sessions):
                tenant, session = f"tenant{number % TENANTS}", f"s{number:07d}"
                prev = GENESIS_HASH
                seq = 0
                for run in range(RUNS_PER_SESSION):
                    for execution, kind, raw in run_events(session, run):
                        seq += 1
                        data = validate_data(kind, raw)
                        created = base + timedelta(milliseconds=written // 8)
                        event = StoredEvent(0, seq, tenant, session, execution, kind, data, created)
                        digest = chain_hash(prev, event_hash_input(event))
                        key = f"run:{raw['runId']}" if kind == "RunAccepted" else None
                        copy.write_row(
                            (tenant, session, seq, execution, kind, json.dumps(data), created,
                             key, prev, digest)
                        )
                        prev = digest
                        written += 1
                heads.append((tenant, session, seq, prev))
        with conn.cursor() as cursor, cursor.copy(
            "COPY agent_stream_heads (tenant_id, session_id, last_seq, last_hash) FROM STDIN"
        ) as copy:
            for head in heads:
                copy.write_row(head)
        conn.execute("ANALYZE agent_events")
    return written


def server_cpu(url: str) -> float | None:
    """CPU seconds the PostgreSQL server has used so far (postmaster, its live backends and the
    ones it reaped), read from /proc; ``None`` when the server is not on this host or unreadable.
    The server shares the cores with verify, so its cost per event counts as much as verify's."""
    try:
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT current_setting('data_directory')").fetchone()
        assert row is not None
        postmaster = int((Path(row[0]) / "postmaster.pid").read_text().split("\n", 1)[0])
        ticks = 0
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(entry.name) == postmaster:
                ticks += sum(int(value) for value in fields[11:15])
            elif int(fields[1]) == postmaster:
                ticks += int(fields[11]) + int(fields[12])
        return ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, psycopg.Error):
        return None


def _server_note(before: float | None, after: float | None, events: int) -> str:
    if before is None or after is None:
        return "server CPU not readable"
    used = after - before
    return f"server CPU {used:.1f}s = {used / events * 1e6:.1f} us/event"


def bare_scan(url: str) -> tuple[int, float, float]:
    """The baseline: the same rows, in the same order, through a server-side cursor, no work.
    Returns rows, wall seconds and this process's CPU seconds."""
    cpu_before = time.process_time()
    started = time.perf_counter()
    count = 0
    with psycopg.connect(url) as conn, conn.cursor(name="bare", binary=True) as cursor:
        cursor.itersize = 5000
        cursor.execute(
            "SELECT event_id, seq, tenant_id, session_id, execution_id, event_type, payload, "
            "created_at, prev_hash, hash FROM agent_events ORDER BY tenant_id, session_id, seq"
        )
        for _ in cursor:
            count += 1
    return count, time.perf_counter() - started, time.process_time() - cpu_before


def timed_verify(url: str, *extra: str) -> tuple[int, float, float, float, str]:
    """``agentlane replay verify`` in a child process (and its workers): exit code, wall seconds,
    CPU seconds, peak RSS (MiB) of the largest process, its last line of output."""
    env = {**os.environ, "DATABASE_URL": url, "AGENTLANE_SHARDS": str(SHARDS)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with tempfile.TemporaryFile() as output:
        started = time.perf_counter()
        child = subprocess.run(
            [sys.executable, "-m", "agentlane.cli", "replay", "verify", *extra],
            env=env, stdout=output, stderr=subprocess.STDOUT, check=False,
        )
        elapsed = time.perf_counter() - started
        output.seek(0)
        text = output.read().decode(errors="replace").strip()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    # ru_maxrss of children is the largest single process so far; each run's peak is reported
    # by the smallest run first, so a growth would show.
    return child.returncode, elapsed, cpu, after.ru_maxrss / 1024, text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument(
        "--database-url",
        help="an empty database, or one this script filled before (default: embedded PostgreSQL)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="replay-bench-") as tmp:
        server = None
        url = args.database_url
        if url is None:
            server = EmbeddedPostgres(Path(tmp) / "pg", settings={"shared_buffers": "512MB"})
            server.start()
            url = server.url()
        try:
            return run(url, args.events)
        finally:
            if server is not None:
                server.destroy()


def existing_events(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM agent_events").fetchone()
    return int(row[0]) if row else 0


def has_read_models(url: str) -> bool:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT EXISTS (SELECT 1 FROM read_sessions)").fetchone()
    return bool(row and row[0])


async def build_read_models(url: str) -> int:
    """The projector's own rebuild, so verify compares real read models."""
    from projector import rebuild_read_models

    async with open_database(url, name="bench-rebuild", min_size=1, max_size=4) as db:
        result = await rebuild_read_models(db)
    return int(result.events)


def run(url: str, events: int) -> int:
    migrate(url, shards=SHARDS)
    written = existing_events(url)
    if written:
        print(f"reusing the {written:,} events already in the database", flush=True)
    else:
        started = time.perf_counter()
        written = generate(url, events)
        print(f"generated {written:,} events in {time.perf_counter() - started:.1f}s "
              "(COPY + hash chain)", flush=True)
    if not has_read_models(url):
        started = time.perf_counter()
        folded = asyncio.run(build_read_models(url))
        print(f"read models rebuilt by the projector from {folded:,} events in "
              f"{time.perf_counter() - started:.1f}s", flush=True)
    bare_scan(url)  # warm the cache, so both sides read from memory
    server_before = server_cpu(url)
    count, bare_s, bare_cpu = bare_scan(url)
    print(f"baseline: bare SELECT scan, same rows and order: {count:,} rows in {bare_s:.2f}s = "
          f"{count / bare_s:,.0f} rows/s; client CPU {bare_cpu:.1f}s = "
          f"{count / bare_cpu:,.0f} rows per CPU-second = {bare_cpu / count * 1e6:.1f} us/row; "
          f"{_server_note(server_before, server_cpu(url), count)}; "
          f"load {os.getloadavg()[0]:.2f} / {os.getloadavg()[1]:.2f}", flush=True)
    worst = 0
    for label, extra, events in (
        ("verify --tenant tenant0 --jobs 1", ("--tenant", "tenant0", "--jobs", "1"),
         written // TENANTS),
        ("verify --jobs 1", ("--jobs", "1"), written),
        ("verify (auto: one worker per core)", (), written),
    ):
        server_before = server_cpu(url)
        code, seconds, cpu, rss, output = timed_verify(url, *extra)
        server = _server_note(server_before, server_cpu(url), events)
        worst = max(worst, code)
        verdict = output.splitlines()[-1] if output else ""
        print(f"{label}: exit {code}, {events:,} events in {seconds:.2f}s = "
              f"{events / seconds:,.0f} events/s ({bare_s / seconds * events / count:.2f} of the "
              f"bare scan's rate); client CPU {cpu:.1f}s = {events / cpu:,.0f} events per "
              f"CPU-second = {cpu / events * 1e6:.1f} us/event; {server}; peak RSS {rss:.0f} MiB"
              f"  [{verdict}]", flush=True)
    return worst


if __name__ == "__main__":
    raise SystemExit(main())
