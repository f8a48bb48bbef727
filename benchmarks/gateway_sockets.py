"""Gateway at scale, each case beside a baseline in the same run: a bare Starlette WebSocket app
on the same uvicorn settings (accept, ``ready``, relay what it is POSTed to the sockets of each
session, answer pings).

    .venv/bin/python benchmarks/gateway_sockets.py                       # every case
    .venv/bin/python benchmarks/gateway_sockets.py --cases fanout --sockets 10000 --sessions 1

Cases:
- ``idle``: RSS per idle socket (server process, psutil; kernel socket buffers are not in it).
- ``fanout``: sockets x sessions; every ``--interval-ms`` one event per session, ``--events``
  times, open loop (each event is stamped with the time it was due, so a server that falls
  behind shows it): the gateway gets one committed ``append_batch`` of Token events; the
  baseline sends the same frames itself, from one task. Latency: due time to receipt. Every
  socket must get every event of its session once, in ``seq`` order (``faults`` counts gaps and
  duplicates). ``server_us_per_frame``: server CPU per frame delivered, which the clients' own
  CPU (they share the cores) cannot blur.
- ``storm``: ``--storm-sockets`` over ``--storm-sessions``; the server is SIGKILLed, events are
  appended meanwhile, it restarts on the same port; time until every socket is ``ready`` again
  (clients reconnect with their ``lastEventId``).
- ``slow`` (gateway only; the baseline has no policy): one client stops reading while its session
  gets ``--slow-rate`` events/s; when and with which code the gateway closes it.

Clients run in ``--client-procs`` processes (benchmarks/_ws_clients.py). The load average is
printed beside every figure. ``BENCH_LOOP=uvloop`` runs both servers on uvloop (the ``bench``
extra; default: asyncio's loop, as ``agentlane gateway`` does); ``BENCH_GC=off`` runs the gateway
without its GC policy.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._load import load_average  # noqa: E402
from benchmarks._ws_clients import ClientProcess, all_answer, spread  # noqa: E402

SHARDS = 16


# --- servers (each in its own process) ----------------------------------------------------------


def serve_echo(port: int) -> None:
    """The baseline: the least a Starlette WebSocket server can do for these clients."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route, WebSocketRoute
    from starlette.websockets import WebSocket, WebSocketDisconnect

    from gateway import UVICORN_WS_OPTIONS

    sessions: dict[str, set[WebSocket]] = {}

    async def endpoint(websocket: WebSocket) -> None:
        session = websocket.path_params["session_id"]
        await websocket.accept()
        await websocket.send_text('{"type":"ready","lastEventId":0}')
        sessions.setdefault(session, set()).add(websocket)
        try:
            while True:
                await websocket.receive_text()
        except WebSocketDisconnect:
            pass
        finally:
            sessions[session].discard(websocket)

    from agentlane.records import StoredEvent
    from gateway.protocol import event_frame

    async def emit(plan: dict[str, Any]) -> None:
        """The gateway's frames for ``plan``, each stamped with the time it was due (so a busy
        loop's lateness counts), sent in order by this one task."""
        start_ns, interval_ns = plan["start_ns"], int(plan["interval_ms"] * 1e6)
        for k in range(plan["events"]):
            due_ns = start_ns + k * interval_ns
            await asyncio.sleep(max(0.0, (due_ns - time.time_ns()) / 1e9))
            now = datetime.now(UTC)
            for session in plan["sessions"]:
                seq = seqs[session] = seqs.get(session, 0) + 1
                frame = event_frame(StoredEvent(
                    seq, seq, "default", session, None, "Token",
                    {"text": str(due_ns), "index": 0}, now,
                ))
                for websocket in tuple(sessions.get(session, ())):
                    with contextlib.suppress(Exception):
                        await websocket.send_text(frame)

    seqs: dict[str, int] = {}
    emitters: set[asyncio.Task[None]] = set()

    async def schedule(request: Request) -> PlainTextResponse:
        task = asyncio.create_task(emit(json.loads(await request.body())))
        emitters.add(task)
        task.add_done_callback(emitters.discard)
        return PlainTextResponse("ok")

    async def healthz(_: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette(routes=[
        WebSocketRoute("/ws/{session_id}", endpoint),
        Route("/schedule", schedule, methods=["POST"]),
        Route("/readyz", healthz),
    ])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off",
                loop=os.environ.get("BENCH_LOOP", "asyncio"), **UVICORN_WS_OPTIONS)


def serve_gateway(port: int) -> None:
    """``agentlane gateway``, on the event loop ``BENCH_LOOP`` names, with its GC policy unless
    ``BENCH_GC=off``."""
    from agentlane.cli.gateway import serve
    from agentlane.gc_policy import GcPolicy
    from agentlane.logs import configure_logging
    from agentlane.settings import Settings

    configure_logging("gateway", level="WARNING")
    factory = None
    if os.environ.get("BENCH_LOOP", "asyncio") == "uvloop":
        import uvloop  # the bench extra

        factory = uvloop.new_event_loop
    policy = None if os.environ.get("BENCH_GC") == "off" else GcPolicy()
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(serve(Settings.from_env(PORT=str(port)), host="127.0.0.1", gc_policy=policy))


@dataclass
class Server:
    mode: str
    port: int
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = Path(tempfile.gettempdir()) / f"gateway_sockets-{self.mode}.log"
        with log.open("ab") as sink:
            self.proc = subprocess.Popen(
                [sys.executable, __file__, "serve", self.mode, str(self.port)],
                env={**os.environ, **self.env}, stdout=sink, stderr=subprocess.STDOUT,
            )

    def wait_ready(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.http}/readyz", timeout=1).status_code == 200:
                    return
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.mode} server exited")
            time.sleep(0.02)
        raise TimeoutError(f"{self.mode} server not ready")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    @property
    def cpu_s(self) -> float:
        assert self.proc is not None
        times = psutil.Process(self.proc.pid).cpu_times()
        return float(times.user + times.system)

    @property
    def rss(self) -> int:
        assert self.proc is not None
        return int(psutil.Process(self.proc.pid).memory_info().rss)


@contextlib.contextmanager
def running(mode: str, env: dict[str, str]) -> Iterator[Server]:
    from agentlane.cli.embedded_pg import free_port

    server = Server(mode, free_port(), env)
    server.start()
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


# --- what the benchmark sends -------------------------------------------------------------------


async def emit(server: Server, store: Any, sessions: list[str], events: int,
               interval_ms: float) -> list[float]:
    """``events`` events per session, one every ``interval_ms``, each stamped with the time it
    was due: open loop, so a server that falls behind shows it in the latency. The gateway gets
    committed ``append_batch``es of Token events from here; the baseline emits the same frames
    itself (one POST of the plan). Returns how late each append started (gateway only), ms."""
    start_ns = time.time_ns() + 100_000_000
    if server.mode == "echo":
        plan = {"sessions": sessions, "events": events, "interval_ms": interval_ms,
                "start_ns": start_ns}
        async with httpx.AsyncClient(timeout=30) as http:
            await http.post(f"{server.http}/schedule", content=json.dumps(plan))
        await asyncio.sleep(max(0.0, (start_ns - time.time_ns()) / 1e9 + events * interval_ms
                                / 1000))
        return []
    from agentlane.records import NewEvent

    late_ms = []
    for k in range(events):
        due_ns = start_ns + int(k * interval_ms * 1e6)
        await asyncio.sleep(max(0.0, (due_ns - time.time_ns()) / 1e9))
        late_ms.append((time.time_ns() - due_ns) / 1e6)
        await store.append_batch(
            [NewEvent("default", s, "Token", {"text": str(due_ns), "index": 0}) for s in sessions]
        )
    return late_ms


def quantiles(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return (values[0], values[0]) if values else (0.0, 0.0)
    q = statistics.quantiles(values, n=100)
    return q[49], q[98]


def open_clients(server: Server, sockets: int, sessions: list[str], procs: int
                 ) -> tuple[list[ClientProcess], float]:
    clients = [ClientProcess(server.url, names) for names in spread(sockets, sessions, procs)]
    started = time.perf_counter()
    all_answer(clients, "open")
    return clients, time.perf_counter() - started


def close_clients(clients: list[ClientProcess]) -> None:
    for client in clients:
        client.stop()


# --- cases --------------------------------------------------------------------------------------


async def case_idle(
    mode: str, server: Server, args: argparse.Namespace, tag: str
) -> dict[str, Any]:
    warm, _ = open_clients(server, 50, [f"{tag}warm{i}" for i in range(10)], 1)
    close_clients(warm)
    await asyncio.sleep(1)
    before = server.rss
    sessions = [f"{tag}idle{i}" for i in range(args.idle_sessions)]
    clients, open_s = open_clients(server, args.idle_sockets, sessions, args.client_procs)
    await asyncio.sleep(2)
    after = server.rss
    close_clients(clients)
    await asyncio.sleep(2)
    closed = server.rss
    return {"case": "idle", "mode": mode, "sockets": args.idle_sockets,
            "kib_per_socket": (after - before) / args.idle_sockets / 1024,
            "rss_mib": f"{before / 2**20:.0f} -> {after / 2**20:.0f} -> {closed / 2**20:.0f}",
            "connect_s": open_s}


async def case_fanout(mode: str, server: Server, store: Any, args: argparse.Namespace,
                      sockets: int, session_count: int, tag: str) -> dict[str, Any]:
    sessions = [f"{tag}fan{sockets}x{session_count}-{i}" for i in range(session_count)]
    clients, open_s = open_clients(server, sockets, sessions, args.client_procs)
    try:
        await asyncio.sleep(0.5)
        cpu_before = server.cpu_s
        late_ms = await emit(server, store, sessions, args.events, args.interval_ms)
        results = all_answer(clients, "collect", args.events, 60)
        cpu_s = server.cpu_s - cpu_before
    finally:
        close_clients(clients)
    latencies = [x for r in results for x in r["latencies_ms"]]
    p50, p99 = quantiles(latencies)
    return {"case": "fanout", "mode": mode, "sockets": sockets, "sessions": session_count,
            "p50_ms": p50, "p99_ms": p99, "append_late_p99_ms": quantiles(late_ms)[1],
            "receipts": f"{sum(r['received'] for r in results)}/{sockets * args.events}",
            "faults": sum(r["faults"] for r in results), "connect_s": open_s,
            # Server CPU per frame delivered: what the clients' own CPU cannot blur.
            "server_us_per_frame": cpu_s / max(1, len(latencies)) * 1e6,
            "load": load_average()}


async def case_storm(mode: str, server: Server, store: Any, args: argparse.Namespace,
                     tag: str) -> dict[str, Any]:
    sessions = [f"{tag}storm{i}" for i in range(args.storm_sessions)]
    clients, _ = open_clients(server, args.storm_sockets, sessions, args.client_procs)
    try:
        await emit(server, store, sessions, 1, 0)
        all_answer(clients, "collect", 1, 30)
        killed = time.time()
        server.kill()
        if mode == "gateway":  # history to replay on reconnect: 5 events per session
            await emit(server, store, sessions, 5, 0)
        for client in clients:
            client.send("storm", 120)
        restarted = time.time()
        server.start()
        server.wait_ready()
        listening = time.time()
        results = [client.answer() for client in clients]
        reads = await history_reads(server) if mode == "gateway" else {}
    finally:
        close_clients(clients)
    last = max(r["last_ready_at"] for r in results)
    return {"case": "storm", "mode": mode, "sockets": args.storm_sockets,
            "sessions": args.storm_sessions,
            "ready": f"{sum(r['ready'] for r in results)}/{args.storm_sockets}",
            "kill_to_all_ready_s": last - killed, "restart_to_ready_s": listening - restarted,
            "listening_to_all_ready_s": last - listening, **reads, "load": load_average()}


async def history_reads(server: Server) -> dict[str, float]:
    """The restarted gateway's history reads: Postgres reads, and requests that joined one."""
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"{server.http}/metrics")).text
    found = dict(re.findall(
        r"^agentlane_gateway_(gap_fetches|history_reads_joined)_total ([0-9.e+]+)$", text, re.M
    ))
    return {f"history_{k.removeprefix('history_')}": float(v) for k, v in found.items()}


async def case_slow(server: Server, store: Any, args: argparse.Namespace) -> dict[str, Any]:
    """A client that stops reading: when does the gateway close it, with which code?"""
    from agentlane.records import NewEvent

    async def closes() -> dict[str, float]:
        async with httpx.AsyncClient() as http:
            text = (await http.get(f"{server.http}/metrics")).text
        return {m[0]: float(m[1]) for m in re.findall(
            r'agentlane_gateway_closes_total\{code="(\d+)"\} ([0-9.e+]+)', text)}

    before = await closes()
    ws = await connect(f"{server.url}/ws/slow", ping_interval=None)  # max_queue: 16 frames
    async for text in ws:
        if json.loads(text)["type"] == "ready":
            break
    stopped = time.monotonic()  # from here on the client reads nothing
    code, after_s, sent = None, None, 0
    while time.monotonic() - stopped < args.slow_timeout:
        await store.append(NewEvent("default", "slow", "Token", {"text": "x" * 200, "index": 0}))
        sent += 1
        await asyncio.sleep(1 / args.slow_rate)
        if sent % max(1, int(args.slow_rate / 5)) == 0:
            now = await closes()
            new = [c for c, n in now.items() if n > before.get(c, 0)]
            if new:
                code, after_s = new[0], time.monotonic() - stopped
                break
    with contextlib.suppress(Exception):
        await asyncio.wait_for(ws.close(), 5)
    return {"case": "slow", "mode": "gateway", "rate_per_s": args.slow_rate, "code": code,
            "closed_after_s": after_s, "events_sent": sent, "load": load_average()}


# --- the run ------------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> None:
    from agentlane.cli.embedded_pg import EmbeddedPostgres
    from agentlane.db import open_database
    from agentlane.migrate import migrate
    from agentlane.store import EventStore

    cases = set(args.cases.split(","))
    grid = [(int(s), int(n)) for s, n in (x.split("x") for x in args.fanout.split(","))]
    rows: list[dict[str, Any]] = []

    def report(row: dict[str, Any]) -> None:
        rows.append(row)
        print(json.dumps(row, default=lambda x: round(x, 2)), flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        pg = EmbeddedPostgres(Path(tmp) / "pg")  # durable: fsync on
        pg.start()
        try:
            url = pg.url()
            migrate(url, shards=SHARDS)
            env = {
                "DATABASE_URL": url, "AGENTLANE_BUS": "postgres", "AGENTLANE_AUTH": "none",
                "AGENTLANE_SHARDS": str(SHARDS), "AGENTLANE_LOG_LEVEL": "WARNING",
                # One tenant holds every socket here: no per-tenant cap (default 5,000).
                "AGENTLANE_CMD_MAX_TENANT_SOCKETS": "0",
            }
            async with open_database(url, name="bench", max_size=4) as db:
                store = EventStore(db, shards=SHARDS)
                for round_ in range(args.rounds):
                    for mode in args.modes.split(","):
                        tag = f"{mode}{round_}-"
                        with running(mode, env) as server:
                            if "idle" in cases:
                                report(await case_idle(mode, server, args, tag))
                            if "fanout" in cases:
                                for sockets, sessions in grid:
                                    report(await case_fanout(
                                        mode, server, store, args, sockets, sessions, tag))
                            if "storm" in cases:
                                report(await case_storm(mode, server, store, args, tag))
                            if "slow" in cases and mode == "gateway":
                                report(await case_slow(server, store, args))
        finally:
            pg.destroy()
    summarize(rows)


def summarize(rows: list[dict[str, Any]]) -> None:
    print(f"\n{load_average()} at the end")
    by: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for row in rows:
        by.setdefault((row["case"], row["mode"], row.get("sockets"), row.get("sessions")),
                      []).append(row)

    def median(case: str, mode: str, sockets: Any, sessions: Any, key: str) -> float:
        values = [r[key] for r in by.get((case, mode, sockets, sessions), [])]
        return statistics.median(values) if values else float("nan")

    for (case, mode, sockets, sessions) in sorted(by, key=str):
        if mode != "gateway":
            continue
        if case == "fanout":
            g50, g99 = (median(case, "gateway", sockets, sessions, k) for k in ("p50_ms", "p99_ms"))
            e50, e99 = (median(case, "echo", sockets, sessions, k) for k in ("p50_ms", "p99_ms"))
            gcpu, ecpu = (median(case, m, sockets, sessions, "server_us_per_frame")
                          for m in ("gateway", "echo"))
            print(f"fanout {sockets:>6} sockets x {sessions:>4} sessions: gateway p50/p99 "
                  f"{g50:8.1f} / {g99:8.1f} ms   bare {e50:7.1f} / {e99:7.1f} ms   "
                  f"p99 ratio {g99 / max(e99, 0.01):5.2f}x   server CPU/frame gateway "
                  f"{gcpu:5.1f} us, bare {ecpu:5.1f} us")
        elif case == "idle":
            g = median(case, "gateway", sockets, sessions, "kib_per_socket")
            e = median(case, "echo", sockets, sessions, "kib_per_socket")
            print(f"idle {sockets} sockets: gateway {g:.1f} KiB/socket, bare {e:.1f}, "
                  f"ratio {g / max(e, 0.01):.2f}x")
        elif case == "storm":
            g = median(case, "gateway", sockets, sessions, "listening_to_all_ready_s")
            e = median(case, "echo", sockets, sessions, "listening_to_all_ready_s")
            print(f"storm {sockets} sockets: listening -> all ready: gateway {g:.2f} s, "
                  f"bare {e:.2f} s")
        elif case == "slow":
            for row in by[(case, mode, sockets, sessions)]:
                print(f"slow consumer at {row['rate_per_s']} events/s: closed {row['code']} "
                      f"after {row['closed_after_s']} s")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        _, _, mode, port = sys.argv
        (serve_gateway if mode == "gateway" else serve_echo)(int(port))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="idle,fanout,storm,slow")
    parser.add_argument("--fanout", default="1000x1,1000x100,5000x1,5000x100,10000x1,10000x100",
                        help="SOCKETSxSESSIONS, comma-separated")
    parser.add_argument("--events", type=int, default=50)
    parser.add_argument("--interval-ms", type=float, default=20)
    parser.add_argument("--idle-sockets", type=int, default=10_000)
    parser.add_argument("--idle-sessions", type=int, default=1000)
    parser.add_argument("--storm-sockets", type=int, default=5000)
    parser.add_argument("--storm-sessions", type=int, default=100)
    parser.add_argument("--slow-rate", type=float, default=20)
    parser.add_argument("--slow-timeout", type=float, default=60)
    parser.add_argument("--client-procs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--modes", default="echo,gateway", help="servers to measure, in order")
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # children inherit it
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
