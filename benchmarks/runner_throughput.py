"""Completed runs per second of one ``agentlane runner`` process, offline model, 3 steps per run.

    python benchmarks/runner_throughput.py [--runs 2000] [--sessions 500] [--rounds 2]

Each round uses a fresh durable (fsync on) database with 64 shards. ``--runs`` runs of
``calculate 6*7`` (offline model: model call -> calculator tool -> model call -> answer, 3 journaled
steps) are accepted first across ``--sessions`` sessions (not timed); then one real runner process
starts (leases, discovery, admission 64, the engine) and works them off. Printed side by side:

- runner: completed runs/s, from its first ``RunStarted`` to its last ``Completed`` (database
  time, so process start-up is excluded); target >= 300 runs/s;
- write amplification: ``agent_events`` rows per run (RunAccepted included), and every row the
  runner phase inserted, updated or deleted per run (events, run_index, stream heads);
- baseline: a bare loop writing the same rows per run with the store, one ``append_batch`` per
  run (no runner, no engine), 64 runs at a time; and the ratio runner / baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import psycopg

from agentlane.cli.embedded_pg import free_port
from agentlane.commands import Commands
from agentlane.db import open_database
from agentlane.records import NewEvent
from agentlane.run_index import RunIndex
from agentlane.store import EventStore
from benchmarks._load import load_average
from benchmarks._pg import benchmark_database

SHARDS = 64
ROOT = Path(__file__).resolve().parent.parent


async def accept_runs(url: str, runs: int, sessions: int) -> None:
    async with open_database(url, name="bench-commands", min_size=1, max_size=16) as db:
        commands = Commands(EventStore(db, shards=SHARDS), RunIndex(db))

        async def session(number: int) -> None:
            for index in range(number, runs, sessions):
                await commands.start_run(tenant_id="bench", session_id=f"s{number}",
                                         run_id=f"r{index}", message="calculate 6*7")

        await asyncio.gather(*(session(n) for n in range(sessions)))


def table_writes(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute(
        "SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) FROM pg_stat_user_tables "
        "WHERE relname IN ('agent_events', 'run_index', 'agent_stream_heads')"
    ).fetchone()
    assert row is not None
    return int(row[0])


def run_runner(url: str, runs: int, log_dir: Path) -> dict[str, float]:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_force_next_flush()")
        writes_before = table_writes(conn)
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "DATABASE_URL": url,
        "AGENTLANE_SHARDS": str(SHARDS),
        "AGENTLANE_MODEL": "offline",
        "AGENTLANE_LOG_LEVEL": "WARNING",
        "POD_NAME": "bench-runner",
        "PORT": str(port),
    }
    with (log_dir / "runner.log").open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "agentlane.cli", "runner", "--host", "127.0.0.1"],
            env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 600
        with psycopg.connect(url, autocommit=True) as conn:
            while True:
                row = conn.execute("SELECT count(*) FROM run_index").fetchone()
                if row is not None and row[0] == 0:
                    break
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"runner stopped or too slow; see {log_dir / 'runner.log'}")
                time.sleep(0.2)
            span = conn.execute(
                "SELECT extract(epoch FROM max(created_at) FILTER (WHERE event_type = 'Completed')"
                " - min(created_at) FILTER (WHERE event_type = 'RunStarted')), "
                "count(*) FILTER (WHERE event_type = 'Completed'), count(*) FROM agent_events"
            ).fetchone()
            assert span is not None
            metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
            conn.execute("SELECT pg_sleep(0.6)")  # let the runner's statistics reach the view
            writes = table_writes(conn) - writes_before
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    seconds, completed, rows = float(span[0]), int(span[1]), int(span[2])
    if completed != runs:
        raise SystemExit(f"{completed} of {runs} runs completed")
    fenced = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("agentlane_runner_fenced_appends_total")
    )
    return {
        "runs_per_s": runs / seconds,
        "rows_per_run": rows / runs,
        "writes_per_run": writes / runs,
        "fenced": fenced,
    }


async def baseline(url: str, runs: int, rows_per_run: int) -> float:
    """The same rows per run, one append_batch per run, 64 runs at a time: runs/s."""
    async with open_database(url, name="bench-baseline", min_size=4, max_size=10) as db:
        store = EventStore(db, shards=SHARDS)
        queue = list(range(runs))

        async def worker() -> None:
            while queue:
                index = queue.pop()
                await store.append_batch(
                    [
                        NewEvent("base", f"b{index}", "Token", {"text": "tok", "index": n},
                                 execution_id=f"x{index}")
                        for n in range(rows_per_run)
                    ]
                )

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(64)))
        return runs / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--sessions", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="agentlane-runner-bench-") as tmp:
        tmp = os.environ.get("BENCH_LOG_DIR", tmp)
        for round_number in range(1, args.rounds + 1):
            with benchmark_database(SHARDS) as url:
                asyncio.run(accept_runs(url, args.runs, args.sessions))
                runner = run_runner(url, args.runs, Path(tmp))
                base = asyncio.run(baseline(url, args.runs, round(runner["rows_per_run"])))
            print(
                f"round {round_number}: runner {runner['runs_per_s']:.0f} runs/s "
                f"(target >= 300) | agent_events rows/run {runner['rows_per_run']:.1f} | "
                f"rows written/run (events+index+heads) {runner['writes_per_run']:.1f} | "
                f"baseline append_batch/run {base:.0f} runs/s | "
                f"ratio {runner['runs_per_s'] / base:.2f} | "
                f"fenced appends {runner['fenced']:.0f} | {load_average()}",
                flush=True,
            )


if __name__ == "__main__":
    main()
