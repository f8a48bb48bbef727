"""Gateway sockets: idle sockets one gateway process holds (RSS per socket) and fan-out latency
from append to receipt, for each uvicorn WebSocket implementation, each next to a baseline: a bare
Starlette WebSocket app (accept, one frame, echo) on the same server settings.

    .venv/bin/python benchmarks/gateway_sockets.py                      # 10,000 idle, 1,000 fan-out
    .venv/bin/python benchmarks/gateway_sockets.py --sockets 2000 --impls websockets-sansio

RSS is the server process's resident memory (psutil) before the sockets and with them open and
idle; kernel socket buffers are not in it. Fan-out latency: the benchmark appends a Token event
carrying its wall-clock time (gateway, postgres bus) or POSTs it to the baseline, which sends it
to every socket; each client notes receipt time minus that time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
from websockets.asyncio.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SHARDS = 16


# --- servers (run in a child process) --------------------------------------------------------


def _uvicorn_options(ws: str, deflate: bool) -> dict[str, object]:
    from gateway import UVICORN_WS_OPTIONS

    return {**UVICORN_WS_OPTIONS, "ws": ws, "ws_per_message_deflate": deflate}


def serve_echo(port: int, ws: str, deflate: bool) -> None:
    """The baseline: the least a Starlette WebSocket server can do for these clients."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route, WebSocketRoute
    from starlette.websockets import WebSocket, WebSocketDisconnect

    sockets: set[WebSocket] = set()

    async def endpoint(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text('{"type":"ready","lastEventId":0}')
        sockets.add(websocket)
        try:
            while True:
                text = await websocket.receive_text()
                if '"pong"' not in text:
                    await websocket.send_text(text)
        except WebSocketDisconnect:
            pass
        finally:
            sockets.discard(websocket)

    async def broadcast(request: Request) -> PlainTextResponse:
        body = (await request.body()).decode()
        for websocket in tuple(sockets):
            with contextlib.suppress(Exception):
                await websocket.send_text(body)
        return PlainTextResponse("ok")

    async def healthz(_: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette(
        routes=[
            WebSocketRoute("/ws/{session_id}", endpoint),
            Route("/broadcast", broadcast, methods=["POST"]),
            Route("/readyz", healthz),
        ]
    )
    uvicorn.run(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="off",
        **_uvicorn_options(ws, deflate),  # type: ignore[arg-type]
    )


def serve_gateway(port: int, ws: str, deflate: bool) -> None:
    from agentlane.cli.gateway import serve
    from agentlane.logs import configure_logging
    from agentlane.settings import Settings

    settings = Settings.from_env(PORT=str(port))
    configure_logging("gateway", level="WARNING")
    asyncio.run(serve(settings, host="127.0.0.1", uvicorn_options=_uvicorn_options(ws, deflate)))


# --- clients -----------------------------------------------------------------------------------


@dataclass
class Client:
    ws: ClientConnection
    ready: asyncio.Event
    latencies_ms: list[float]
    task: asyncio.Task[None] | None = None


async def _follow(client: Client) -> None:
    with contextlib.suppress(Exception):
        async for text in client.ws:
            now = time.time_ns()
            frame = json.loads(text)
            kind = frame.get("type")
            if kind == "ready":
                client.ready.set()
            elif kind == "ping":
                await client.ws.send('{"type":"pong"}')
            elif kind == "event":
                sent = int(frame["event"]["data"]["text"])
                client.latencies_ms.append((now - sent) / 1e6)
            elif kind == "bench":
                client.latencies_ms.append((now - int(frame["t"])) / 1e6)


async def open_clients(
    url: str, count: int, sessions: int, prefix: str, concurrency: int = 200
) -> list[Client]:
    gate = asyncio.Semaphore(concurrency)
    clients: list[Client] = []

    async def one(i: int) -> None:
        async with gate:
            for attempt in range(20):
                try:
                    # Offer permessage-deflate as browsers do: the server's setting decides.
                    ws = await connect(
                        f"{url}/ws/{prefix}{i % sessions}", ping_interval=None, open_timeout=60
                    )
                    break
                except OSError:
                    await asyncio.sleep(0.05 * (attempt + 1))
            else:
                raise RuntimeError("cannot connect")
            client = Client(ws, asyncio.Event(), [])
            client.task = asyncio.create_task(_follow(client))
            await asyncio.wait_for(client.ready.wait(), 120)
            clients.append(client)

    await asyncio.gather(*(one(i) for i in range(count)))
    return clients


async def close_clients(clients: list[Client]) -> None:
    for chunk in range(0, len(clients), 500):
        await asyncio.gather(*(c.ws.close() for c in clients[chunk : chunk + 500]))
    for client in clients:
        if client.task:
            client.task.cancel()


# --- the run ------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def server(mode: str, ws: str, deflate: bool, env: dict[str, str]) -> AsyncIterator[
    tuple[str, psutil.Process]
]:
    from agentlane.cli.embedded_pg import free_port

    port = free_port()
    log = Path(tempfile.gettempdir()) / f"gateway_sockets-{mode}-{ws}.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(  # noqa: ASYNC220 - once per measurement, before any socket
            [sys.executable, __file__, "serve", mode, ws, "1" if deflate else "0", str(port)],
            env={**os.environ, **env}, stdout=sink, stderr=subprocess.STDOUT,
        )
    try:
        async with httpx.AsyncClient() as http:
            for _ in range(600):
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                        break
                if proc.poll() is not None:
                    raise RuntimeError(f"{mode} server died: {log.read_text()[-2000:]}")
                await asyncio.sleep(0.1)
        yield f"ws://127.0.0.1:{port}", psutil.Process(proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


async def measure(
    mode: str, ws: str, deflate: bool, args: argparse.Namespace, env: dict[str, str], store: object
) -> dict[str, object]:
    async with server(mode, ws, deflate, env) as (url, proc):
        # Warm up (imports, first connections, pools), then the baseline RSS.
        # Sessions of this measurement only: one database serves every measurement.
        run = f"{mode}-{ws}-{int(deflate)}-"
        warm = await open_clients(url, 50, 10, run + "warm")
        await close_clients(warm)
        await asyncio.sleep(1)
        before = proc.memory_info().rss
        started = time.perf_counter()
        idle = await open_clients(url, args.sockets, args.sessions, run + "idle")
        connect_s = time.perf_counter() - started
        await asyncio.sleep(2)
        after = proc.memory_info().rss
        await close_clients(idle)
        await asyncio.sleep(1)
        fans = await open_clients(url, args.fanout, 1, run + "fan")
        await asyncio.sleep(0.5)
        async with httpx.AsyncClient() as http:
            for _ in range(args.events):
                stamp = str(time.time_ns())
                if mode == "gateway":
                    from agentlane.records import NewEvent

                    await store.append(  # type: ignore[attr-defined]
                        NewEvent("default", run + "fan0", "Token", {"text": stamp, "index": 0})
                    )
                else:
                    await http.post(
                        url.replace("ws://", "http://") + "/broadcast",
                        content=json.dumps({"type": "bench", "t": stamp}),
                    )
                await asyncio.sleep(args.interval_ms / 1000)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(  # noqa: ASYNC110 - counting receipts
            len(c.latencies_ms) < args.events for c in fans
        ):
            await asyncio.sleep(0.1)
        latencies = sorted(x for c in fans for x in c.latencies_ms)
        await close_clients(fans)
    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return {
        "mode": mode,
        "ws": ws + ("+deflate" if deflate else ""),
        "sockets": args.sockets,
        "rss_before_mib": before / 2**20,
        "rss_after_mib": after / 2**20,
        "kib_per_socket": (after - before) / args.sockets / 1024,
        "connect_per_s": args.sockets / connect_s,
        "fanout_receipts": f"{len(latencies)}/{args.fanout * args.events}",
        "p50_ms": quantiles[49],
        "p99_ms": quantiles[98],
    }


async def run(args: argparse.Namespace) -> None:
    from agentlane.cli.embedded_pg import FAST_UNSAFE_SETTINGS, EmbeddedPostgres
    from agentlane.db import open_database
    from agentlane.migrate import migrate
    from agentlane.store import EventStore

    with tempfile.TemporaryDirectory() as tmp:
        pg = EmbeddedPostgres(Path(tmp) / "pg", settings=FAST_UNSAFE_SETTINGS)
        pg.start()
        try:
            url = pg.url()
            migrate(url, shards=SHARDS)
            env = {
                "DATABASE_URL": url, "AGENTLANE_BUS": "postgres", "AGENTLANE_AUTH": "none",
                "AGENTLANE_SHARDS": str(SHARDS), "AGENTLANE_LOG_LEVEL": "WARNING",
            }
            rows = []
            async with open_database(url, name="bench", max_size=4) as db:
                store = EventStore(db, shards=SHARDS)
                for ws in args.impls.split(","):
                    if ws == "wsproto" and importlib.util.find_spec("wsproto") is None:
                        print("skipping wsproto: `pip install wsproto` to measure it")
                        continue
                    for deflate in ([False, True] if args.deflate else [False]):
                        for mode in ("echo", "gateway"):
                            row = await measure(mode, ws, deflate, args, env, store)
                            rows.append(row)
                            print(json.dumps(row, default=lambda x: round(x, 2)), flush=True)
        finally:
            pg.destroy()
    one, five, fifteen = os.getloadavg()
    print(f"\nload {one:.2f} / {five:.2f} / {fifteen:.2f} at the end")
    print(f"{'server':<8} {'ws':<26} {'sockets':>7} {'KiB/socket':>10} {'conn/s':>8} "
          f"{'fan-out p50 ms':>14} {'p99 ms':>8} {'receipts':>12}")
    for row in rows:
        print(f"{row['mode']:<8} {row['ws']:<26} {row['sockets']:>7} "
              f"{row['kib_per_socket']:>10.1f} {row['connect_per_s']:>8.0f} "
              f"{row['p50_ms']:>14.2f} {row['p99_ms']:>8.2f} {row['fanout_receipts']:>12}")
    by = {(r["mode"], r["ws"]): r for r in rows}
    for mode, ws in by:
        if mode == "gateway" and ("echo", ws) in by:
            g, e = by[("gateway", ws)], by[("echo", ws)]
            print(f"ratio gateway/echo [{ws}]: memory per socket "
                  f"{g['kib_per_socket'] / max(e['kib_per_socket'], 0.01):.2f}x, "
                  f"fan-out p99 {g['p99_ms'] / max(e['p99_ms'], 0.01):.2f}x")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        _, _, mode, ws, deflate, port = sys.argv
        (serve_gateway if mode == "gateway" else serve_echo)(int(port), ws, deflate == "1")
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sockets", type=int, default=10_000)
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--fanout", type=int, default=1000)
    parser.add_argument("--events", type=int, default=50)
    parser.add_argument("--interval-ms", type=float, default=100)
    parser.add_argument("--impls", default="websockets-sansio,websockets,wsproto")
    parser.add_argument("--deflate", action="store_true", help="also measure permessage-deflate")
    args = parser.parse_args()
    # One fd per socket in this process, one in the server (which inherits the limit).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = args.sockets + args.fanout + 1024
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
