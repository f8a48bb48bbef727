"""One tenant floods every door; another's steady runs should not notice.

    python benchmarks/fairness.py [--seconds 20] [--b-rate 5] [--flood 10]

A real stack on a fresh durable database: one ``agentlane edge`` (command API + gateway, JWT auth,
``AGENTLANE_CMD_RATE=10``, burst 20, active-run cap 50) and two ``agentlane runner`` processes of
8 slots each, whose model is the loopback OpenAI-compatible server answering each call after
``--model-s`` (0.1 s): the runners can finish about 160 runs/s, so a flood that gets through
queues work in front of B. Tenant B starts ``--b-rate`` runs/s over HTTP, each in its own session.
Two phases of ``--seconds`` each, in this order in the same run:

- **B alone** (the baseline);
- **B while A floods**: A sends ``--flood`` times its rate limit as HTTP POSTs, the same again as
  WebSocket ``ask`` frames on one socket, and keeps 8 uploads trickling (each body takes 5 s).

Printed per phase, with the load average: B's starts accepted and refused, B's accepted-to-
completed latency p50/p99 (database time: ``RunAccepted`` to ``Completed``), A's accepted and
refused commands per door, and the ratio of B's p99 under the flood to B's p99 alone (goal: at
most 1.5, and no refusal of B).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import jwt
import psycopg
from websockets.asyncio.client import connect

from benchmarks._load import load_average
from benchmarks._pg import benchmark_database
from tests.dev.model_server import ModelServer
from tests.fixtures.processes import Proc, spawn, stop_all

SECRET = "fairness-benchmark-secret-0123456789abcdef"
RATE, BURST, MAX_ACTIVE = 10, 20, 50


def token(tenant: str) -> str:
    return jwt.encode(
        {"tenant": tenant, "exp": int(time.time()) + 3600}, SECRET, algorithm="HS256"
    )


class Tally:
    """What one phase saw."""

    def __init__(self) -> None:
        self.b: Counter[str] = Counter()
        self.a: Counter[str] = Counter()
        self.b_executions: list[str] = []


async def tenant_b(http: httpx.AsyncClient, phase: str, rate: float, seconds: float,
                   tally: Tally) -> None:
    headers = {"Authorization": f"Bearer {token('b')}"}
    started = time.monotonic()
    n = 0
    pending: set[asyncio.Task[None]] = set()

    async def start(n: int) -> None:
        response = await http.post(
            f"/agents/b-{phase}-{n}/runs", json={"runId": f"b-{phase}-{n}", "message": "hi"},
            headers=headers,
        )
        tally.b[str(response.status_code)] += 1
        if response.status_code == 202:
            tally.b_executions.append(response.json()["executionId"])

    while time.monotonic() - started < seconds:
        task = asyncio.create_task(start(n))
        pending.add(task)
        task.add_done_callback(pending.discard)
        n += 1
        await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
    await asyncio.gather(*pending)


async def flood_http(http: httpx.AsyncClient, rate: float, stop: asyncio.Event,
                     tally: Tally) -> None:
    headers = {"Authorization": f"Bearer {token('a')}"}
    n = 0

    async def post(n: int) -> None:
        with contextlib.suppress(httpx.HTTPError):
            response = await http.post(
                f"/agents/a-http-{n}/runs", json={"runId": f"a-http-{n}", "message": "hi"},
                headers=headers,
            )
            tally.a[f"http {response.status_code}"] += 1

    tasks = []
    while not stop.is_set():
        tasks.append(asyncio.create_task(post(n)))
        n += 1
        await asyncio.sleep(1 / rate)
    await asyncio.gather(*tasks)


async def flood_socket(ws_url: str, rate: float, stop: asyncio.Event, tally: Tally) -> None:
    async with connect(f"{ws_url}/ws/a-socket?token={token('a')}") as ws:

        async def read() -> None:
            async for raw in ws:
                frame = json.loads(raw)
                if frame["type"] == "error":
                    tally.a[f"ws {frame['code']}"] += 1
                elif frame["type"] == "event" and frame["event"]["type"] == "RunAccepted":
                    tally.a["ws accepted"] += 1
                elif frame["type"] == "ping":
                    await ws.send(json.dumps({"type": "pong"}))

        reader = asyncio.create_task(read())
        n = 0
        while not stop.is_set():
            await ws.send(json.dumps({"type": "ask", "runId": f"a-ws-{n}", "message": "hi"}))
            n += 1
            await asyncio.sleep(1 / rate)
        await asyncio.sleep(1)
        reader.cancel()


async def flood_uploads(http: httpx.AsyncClient, stop: asyncio.Event, tally: Tally) -> None:
    headers = {"Authorization": f"Bearer {token('a')}", "content-type": "application/json"}

    async def slow(n: int) -> AsyncIterator[bytes]:
        yield b'{"runId": "a-slow-%d", ' % n
        await asyncio.sleep(5)
        yield b'"message": "hi"}'

    async def uploader(lane: int) -> None:
        n = lane
        while not stop.is_set():
            with contextlib.suppress(httpx.HTTPError):
                response = await http.post(f"/agents/a-slow-{n}/runs", content=slow(n),
                                           headers=headers)
                tally.a[f"upload {response.status_code}"] += 1
            n += 8

    await asyncio.gather(*(uploader(lane) for lane in range(8)))


def latencies(url: str, executions: list[str]) -> list[float]:
    """RunAccepted to Completed, database time, of the given runs that completed."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT extract(epoch FROM max(created_at) FILTER (WHERE event_type = 'Completed') "
            "- min(created_at) FILTER (WHERE event_type = 'RunAccepted'))::float8 "
            "FROM agent_events WHERE execution_id = ANY(%s) GROUP BY execution_id",
            (executions,),
        ).fetchall()
    return [float(row[0]) for row in rows if row[0] is not None]


async def wait_completed(url: str, executions: list[str], timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if len(latencies(url, executions)) == len(executions):
            return
        await asyncio.sleep(0.5)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def phase(edge: Proc, url: str, name: str, args: argparse.Namespace, *,
                flood: bool) -> dict[str, Any]:
    tally = Tally()
    stop = asyncio.Event()
    limits = httpx.Limits(max_connections=200)
    async with httpx.AsyncClient(base_url=edge.base_url, timeout=30, limits=limits) as http:
        floods = []
        if flood:
            ws_url = edge.base_url.replace("http://", "ws://")
            floods = [
                asyncio.create_task(flood_http(http, RATE * args.flood, stop, tally)),
                asyncio.create_task(flood_socket(ws_url, RATE * args.flood, stop, tally)),
                asyncio.create_task(flood_uploads(http, stop, tally)),
            ]
            await asyncio.sleep(2)  # the flood is on before B's first run
        load = load_average()
        await tenant_b(http, name, args.b_rate, args.seconds, tally)
        stop.set()
        await asyncio.gather(*floods)
    await wait_completed(url, tally.b_executions)
    seconds = latencies(url, tally.b_executions)
    return {
        "phase": name, "load": load, "b": dict(tally.b), "a": dict(tally.a),
        "b_completed": len(seconds), "p50": statistics.median(seconds) if seconds else None,
        "p99": percentile(seconds, 0.99),
    }


async def main(args: argparse.Namespace) -> None:
    model = ModelServer(delay_s=args.model_s)
    model.start()
    with benchmark_database() as url, tempfile.TemporaryDirectory() as logs:
        env = {
            "DATABASE_URL": url, "AGENTLANE_SHARDS": "64", "AGENTLANE_BUS": "postgres",
            "AGENTLANE_AUTH": "jwt", "AGENTLANE_JWT_SECRET": SECRET,
            "AGENTLANE_CMD_RATE": str(RATE), "AGENTLANE_CMD_BURST": str(BURST),
            "AGENTLANE_CMD_MAX_ACTIVE_RUNS": str(MAX_ACTIVE), "AGENTLANE_MODEL": "loopback",
            "OPENAI_BASE_URL": model.base_url, "OPENAI_API_KEY": "sk-loopback",
            "AGENTLANE_LOG_LEVEL": "WARNING",
        }
        procs = [spawn("edge", ["edge", "--host", "127.0.0.1"], env=env, log_dir=Path(logs))]
        procs += [
            spawn(f"runner-{i}", ["runner", "--host", "127.0.0.1", "--max-concurrent-runs", "8"],
                  env={**env, "POD_NAME": f"runner-{i}"}, log_dir=Path(logs))
            for i in range(2)
        ]
        try:
            for proc in procs:
                proc.wait_http("/readyz", timeout_s=60)
            alone = await phase(procs[0], url, "alone", args, flood=False)
            flooded = await phase(procs[0], url, "flood", args, flood=True)
        finally:
            stop_all(procs)
            model.stop()
    for result in (alone, flooded):
        p50 = "-" if result["p50"] is None else f"{result['p50'] * 1000:.0f} ms"
        print(f"B {result['phase']:<6} ({result['load']}): starts {result['b']}, "
              f"completed {result['b_completed']}, accepted->completed p50 {p50}, "
              f"p99 {result['p99'] * 1000:.0f} ms")
    print(f"A during the flood: {flooded['a']}")
    ratio = flooded["p99"] / alone["p99"] if alone["p99"] else float("nan")
    refused = sum(v for k, v in flooded["b"].items() if k != "202")
    print(f"B's p99 under the flood / alone: {ratio:.2f} (goal <= 1.5); B refused: {refused} "
          "(goal 0)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--b-rate", type=float, default=5.0)
    parser.add_argument("--flood", type=float, default=10.0, help="multiple of A's rate limit")
    parser.add_argument("--model-s", type=float, default=0.1, help="seconds per model call")
    asyncio.run(main(parser.parse_args()))
