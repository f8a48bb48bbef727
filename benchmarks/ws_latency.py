"""Command POST → ``RunAccepted`` on a connected WebSocket: the live path's latency.

    python benchmarks/ws_latency.py [--bus postgres|pubsub|both] [--runs 200] [--rate R]

Starts real processes on this machine: ``agentlane edge`` (command API + gateway on one port) on a
fresh durable embedded PostgreSQL, plus, for the Pub/Sub bus, Google's emulator and ``agentlane
projector``. One client keeps a WebSocket open on a session; the benchmark POSTs runs one after
another and times each from sending the POST to receiving its ``RunAccepted`` frame. Baseline in
the same run: the POST's own round trip (the response arrives when the event is committed), so
the difference is what live delivery adds. Targets (docs/design.md): p99 < 50 ms (postgres bus),
< 250 ms (Pub/Sub emulator). No runner runs, so the sockets carry only the accepted events.

With ``--rate R`` the POSTs are sent open loop at R per second (each on its schedule, whatever the
earlier ones are doing), as independent clients would, instead of one after another, round robin
over ``--sessions`` sessions with a socket each. One session is one Pub/Sub ordering key, which
the subscriber delivers one message at a time: at 100 runs/s in a single session the emulator's
ordered delivery falls behind (seconds), where the same rate over 20 sessions does not.
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
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import websockets

from agentlane.cli.embedded_pg import free_port
from agentlane.cli.pubsub_emulator import PubSubEmulator, emulator_available
from benchmarks._load import load_average
from benchmarks._pg import benchmark_database
from tests.fixtures.processes import Proc, spawn, stop_all


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@contextlib.contextmanager
def stack(url: str, bus: str, logs: Path) -> Iterator[Proc]:
    env = {"DATABASE_URL": url, "AGENTLANE_BUS": bus, "AGENTLANE_LOG_LEVEL": "WARNING"}
    procs: list[Proc] = []
    with contextlib.ExitStack() as stack:
        if bus == "pubsub":
            emulator = PubSubEmulator(logs / "emulator")
            emulator.start()
            stack.callback(emulator.stop)
            env |= {"PUBSUB_EMULATOR_HOST": emulator.host_port, "GOOGLE_CLOUD_PROJECT": "bench"}
            procs.append(spawn("projector", ["projector"], env=env, log_dir=logs))
        # Admission limits out of the way: no runner finishes these runs, and the benchmark
        # measures delivery, not quotas.
        edge = spawn(
            "edge",
            ["edge", "--host", "127.0.0.1", "--max-active-runs", "1000000", "--rate", "100000",
             "--burst", "100000"],
            env=env, log_dir=logs, port=free_port(),
        )
        procs.append(edge)
        stack.callback(stop_all, procs)
        for proc in procs:
            proc.wait_http("/readyz", timeout_s=60)
        yield edge


async def measure(edge: Proc, runs: int) -> tuple[list[float], list[float]]:
    session = f"bench-{int(time.time())}"
    live: list[float] = []
    posts: list[float] = []
    async with httpx.AsyncClient(base_url=edge.base_url, timeout=10) as http:
        # The session exists once it has an event; the socket then follows it live.
        first = await http.post(f"/agents/{session}/runs", json={"runId": f"{session}-0",
                                                                  "message": "warm-up"})
        first.raise_for_status()
        ws_url = edge.base_url.replace("http", "ws") + f"/ws/{session}"
        async with websockets.connect(ws_url, max_size=2**20) as socket:
            while json.loads(await socket.recv()).get("type") != "ready":
                pass
            for i in range(1, runs + 1):
                run_id = f"{session}-{i}"
                started = time.perf_counter()
                response = await http.post(f"/agents/{session}/runs",
                                           json={"runId": run_id, "message": "ping"})
                posts.append(time.perf_counter() - started)
                response.raise_for_status()
                while True:
                    frame = json.loads(await asyncio.wait_for(socket.recv(), timeout=30))
                    event = frame.get("event") or {}
                    if event.get("type") == "RunAccepted" and event["data"]["runId"] == run_id:
                        live.append(time.perf_counter() - started)
                        break
    return posts, live


async def measure_at_rate(
    edge: Proc, runs: int, rate: float, sessions: int
) -> tuple[list[float], list[float]]:
    """POST ``runs`` runs open loop at ``rate`` per second, round robin over ``sessions``
    sessions, each watched by its own socket; each run timed from its own send."""
    stamp = int(time.time())
    names = [f"bench-{stamp}-{index}" for index in range(sessions)]
    sent: dict[str, float] = {}
    live: list[float] = []
    posts: list[float] = []
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=edge.base_url, timeout=10, limits=limits) as http, \
            contextlib.AsyncExitStack() as sockets:
        readers = []
        for session in names:
            first = await http.post(f"/agents/{session}/runs", json={"runId": f"{session}-0",
                                                                      "message": "warm-up"})
            first.raise_for_status()
            ws_url = edge.base_url.replace("http", "ws") + f"/ws/{session}"
            # No keepalive pings: an idle socket's ping answered late under load closed it (1011).
            socket = await sockets.enter_async_context(
                websockets.connect(ws_url, max_size=2**20, ping_interval=None)
            )
            while json.loads(await socket.recv()).get("type") != "ready":
                pass
            readers.append(socket)

        async def read_frames(socket: websockets.ClientConnection, expected: int) -> None:
            seen = 0
            while seen < expected:
                frame = json.loads(await asyncio.wait_for(socket.recv(), timeout=60))
                event = frame.get("event") or {}
                started = sent.get(event.get("data", {}).get("runId", ""))
                if event.get("type") == "RunAccepted" and started is not None:
                    live.append(time.perf_counter() - started)
                    seen += 1

        async def post(session: str, run_id: str, at: float) -> None:
            await asyncio.sleep(max(0.0, at - time.perf_counter()))
            sent[run_id] = started = time.perf_counter()
            response = await http.post(f"/agents/{session}/runs",
                                       json={"runId": run_id, "message": "ping"})
            posts.append(time.perf_counter() - started)
            response.raise_for_status()

        per_session = [len(range(index, runs, sessions)) for index in range(sessions)]
        reading = [
            asyncio.create_task(read_frames(socket, count))
            for socket, count in zip(readers, per_session, strict=True)
        ]
        origin = time.perf_counter() + 0.1
        await asyncio.gather(*(
            post(names[i % sessions], f"{names[i % sessions]}-{i + 1}", origin + i / rate)
            for i in range(runs)
        ))
        await asyncio.gather(*reading)
    return posts, live


def report(bus: str, posts: list[float], live: list[float]) -> None:
    ms = 1000.0
    target = 50 if bus == "postgres" else 250
    print(f"\nbus={bus}, {len(live)} runs (ms)        p50      p99      max   ({load_average()})")
    print(f"  POST round trip (baseline)   {statistics.median(posts) * ms:7.1f}  "
          f"{percentile(posts, 0.99) * ms:7.1f}  {max(posts) * ms:7.1f}")
    print(f"  POST → RunAccepted on socket {statistics.median(live) * ms:7.1f}  "
          f"{percentile(live, 0.99) * ms:7.1f}  {max(live) * ms:7.1f}   (target p99 < {target})")
    print(f"  ratio p99 live / POST        {percentile(live, 0.99) / percentile(posts, 0.99):7.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bus", choices=["postgres", "pubsub", "both"], default="both")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--rate", type=float, help="POSTs per second, open loop (default: one "
                        "after another)")
    parser.add_argument("--sessions", type=int, default=1,
                        help="with --rate: spread the runs over this many sessions (1)")
    args = parser.parse_args()
    buses = ["postgres", "pubsub"] if args.bus == "both" else [args.bus]
    if "pubsub" in buses and not emulator_available():
        print("the Pub/Sub emulator is not installed; measuring the postgres bus only")
        buses = ["postgres"]
    for bus in buses:
        with tempfile.TemporaryDirectory() as tmp, benchmark_database() as url, \
                stack(url, bus, Path(tmp)) as edge:
            if args.rate:
                posts, live = asyncio.run(
                    measure_at_rate(edge, args.runs, args.rate, args.sessions)
                )
                print(f"\nopen loop at {args.rate:.0f} POSTs/s over {args.sessions} session(s)")
            else:
                posts, live = asyncio.run(measure(edge, args.runs))
            report(bus, posts, live)


if __name__ == "__main__":
    main()
