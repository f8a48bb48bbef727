"""Load to controlled rejection: the command service vs. a bare Starlette endpoint, side by side.

    python benchmarks/command_load.py [--rates 100,200,...] [--step-s 4] [--max-inflight 32]

Starts a durable embedded PostgreSQL, then two real server processes on loopback: ``agentlane
command-service`` (auth none, tenant rate and active-run limits off, so the global in-flight bound
is what protects it) and a bare Starlette app on the same uvicorn with the same route and body and
no database and no admission control. An open-loop load generator (a third process: this one;
keep-alive HTTP/1.1 over raw asyncio streams, up to ``--connections`` sockets) offers each rate for
``--step-s`` seconds to each server in turn: ``POST /agents/{session}/runs`` with a fresh runId.

Latency is measured from each request's scheduled send time (no coordinated omission). Per step it
prints accepted/s, the share answered 429, any 5xx or connection errors, and p50/p99 of accepted
requests. The knee is the highest offered rate that is still accepted in full (>= 99% 2xx).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from agentlane.cli.embedded_pg import FAST_UNSAFE_SETTINGS, free_port  # noqa: E402
from benchmarks._load import load_average  # noqa: E402
from benchmarks._pg import benchmark_database  # noqa: E402

DEFAULT_RATES = "100,200,400,600,800,1200,1600,2400,3200"


# --- the baseline server ---------------------------------------------------------------------

def serve_baseline(port: int) -> None:
    """A bare Starlette endpoint: same route and JSON body, answers 202, no DB, no admission."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def start(request: Request) -> JSONResponse:
        body = await request.json()
        return JSONResponse(
            {"sessionId": request.path_params["sessionId"], "runId": body["runId"]},
            status_code=202,
        )

    async def healthz(_: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    app = Starlette(
        routes=[Route("/agents/{sessionId}/runs", start, methods=["POST"]),
                Route("/readyz", healthz)]
    )
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False,
                backlog=4096)


# --- the load generator ----------------------------------------------------------------------

class _Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def request(self, data: bytes) -> int:
        self.writer.write(data)
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("closed")
        status = int(status_line.split()[1])
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length:
            await self.reader.readexactly(length)
        return status


class _Pool:
    def __init__(self, port: int, limit: int) -> None:
        self.port = port
        self.limit = limit
        self.opened = 0
        self.idle: asyncio.Queue[_Conn] = asyncio.Queue()

    async def acquire(self) -> _Conn:
        if not self.idle.empty():
            return self.idle.get_nowait()
        if self.opened < self.limit:
            self.opened += 1
            try:
                return _Conn(*await asyncio.open_connection("127.0.0.1", self.port))
            except OSError:
                self.opened -= 1
                raise
        return await self.idle.get()

    def release(self, conn: _Conn, *, broken: bool) -> None:
        if broken:
            self.opened -= 1
            conn.writer.close()
        else:
            self.idle.put_nowait(conn)

    async def close(self) -> None:
        while not self.idle.empty():
            self.idle.get_nowait().writer.close()


@dataclass
class Step:
    offered: int
    duration_s: float
    statuses: dict[str, int] = field(default_factory=dict)
    accepted_ms: list[float] = field(default_factory=list)
    rejected_ms: list[float] = field(default_factory=list)

    def count(self, key: str) -> int:
        return self.statuses.get(key, 0)

    @property
    def total(self) -> int:
        return sum(self.statuses.values())

    def share(self, key: str) -> float:
        return self.count(key) / self.total if self.total else 0.0


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _request_bytes(run: str, session: int) -> bytes:
    body = json.dumps({"runId": run, "message": "hello"}).encode()
    return (
        f"POST /agents/s{session}/runs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def offer(port: int, rate: int, seconds: float, label: str, connections: int) -> Step:
    """Send ``rate`` requests/s for ``seconds`` (open loop), wait for every answer."""
    pool = _Pool(port, connections)
    step = Step(offered=rate, duration_s=seconds)
    loop = asyncio.get_running_loop()
    total = int(rate * seconds)

    async def one(index: int, scheduled: float) -> None:
        data = _request_bytes(f"{label}-{rate}-{index}", index % 200)
        conn = None
        try:
            conn = await pool.acquire()
            status = await asyncio.wait_for(conn.request(data), 60)
        except (OSError, ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            if conn is not None:
                pool.release(conn, broken=True)
            step.statuses["error"] = step.statuses.get("error", 0) + 1
            return
        pool.release(conn, broken=False)
        elapsed_ms = (loop.time() - scheduled) * 1000
        key = "2xx" if 200 <= status < 300 else str(status) if status in (429, 503) else (
            "5xx" if status >= 500 else "other"
        )
        step.statuses[key] = step.statuses.get(key, 0) + 1
        if key == "2xx":
            step.accepted_ms.append(elapsed_ms)
        elif status == 429:
            step.rejected_ms.append(elapsed_ms)

    started = loop.time()
    tasks = []
    for index in range(total):
        scheduled = started + index / rate
        delay = scheduled - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(index, scheduled)))
    await asyncio.gather(*tasks)
    await pool.close()
    return step


# --- orchestration -----------------------------------------------------------------------------

def _spawn(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)


def _wait_ready(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"server on {port} not ready:\n{log.read_text()[-3000:]}")


def _row(name: str, step: Step) -> str:
    accepted_per_s = step.count("2xx") / step.duration_s
    return (
        f"{name:<16} {step.offered:>8} {accepted_per_s:>10.0f} {100 * step.share('429'):>6.1f}% "
        f"{step.count('5xx') + step.count('503'):>5} {step.count('error'):>6} "
        f"{_percentile(step.accepted_ms, 0.5):>8.1f} {_percentile(step.accepted_ms, 0.99):>8.1f} "
        f"{_percentile(step.rejected_ms, 0.99):>9.1f}"
    )


def _knee(steps: list[Step]) -> Step | None:
    full = [s for s in steps if s.total and s.share("2xx") >= 0.99]
    return max(full, key=lambda s: s.offered) if full else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default=DEFAULT_RATES, help="offered req/s, comma-separated")
    parser.add_argument("--step-s", type=float, default=4.0, help="seconds per rate")
    parser.add_argument("--max-inflight", type=int, default=64, help="command service bound")
    parser.add_argument("--latency-target", type=float, default=0.25,
                        help="command service adaptive bound target (s); 0 = fixed bound")
    parser.add_argument("--connections", type=int, default=512, help="client sockets per server")
    parser.add_argument("--no-fsync", action="store_true", help="database without fsync")
    parser.add_argument("--serve-baseline", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_baseline:
        serve_baseline(args.serve_baseline)
        return 0
    rates = [int(r) for r in args.rates.split(",")]
    logs = Path(os.environ.get("TMPDIR", "/tmp")) / f"command-load-{os.getpid()}"
    logs.mkdir(parents=True, exist_ok=True)

    durability = dict(FAST_UNSAFE_SETTINGS) if args.no_fsync else None
    with benchmark_database(shards=64, settings=durability) as url:
        service_port, baseline_port = free_port(), free_port()
        base_env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"),
                    "PYTHONPATH": str(ROOT)}
        service = _spawn(
            [sys.executable, "-m", "agentlane.cli", "command-service", "--host", "127.0.0.1",
             "--rate", "0", "--max-active-runs", "0", "--max-inflight", str(args.max_inflight),
             "--latency-target", str(args.latency_target)],
            {**base_env, "DATABASE_URL": url, "PORT": str(service_port), "AGENTLANE_AUTH": "none",
             "AGENTLANE_SHARDS": "64", "AGENTLANE_LOG_LEVEL": "WARNING"},
            logs / "command-service.log",
        )
        baseline = _spawn(
            [sys.executable, str(Path(__file__).resolve()), "--serve-baseline", str(baseline_port)],
            base_env, logs / "baseline.log",
        )
        try:
            _wait_ready(service_port, service, logs / "command-service.log")
            _wait_ready(baseline_port, baseline, logs / "baseline.log")
            results: dict[str, list[Step]] = {"command-service": [], "bare-starlette": []}
            ports = {"command-service": service_port, "bare-starlette": baseline_port}
            print(f"max-inflight={args.max_inflight} latency-target={args.latency_target}s "
                  f"step={args.step_s}s "
                  f"connections={args.connections} cpus={os.cpu_count()}")
            print(f"{'server':<16} {'offered':>8} {'accepted':>10} {'429':>7} {'5xx':>5} "
                  f"{'errors':>6} {'p50 ms':>8} {'p99 ms':>8} {'429 p99':>9}")
            for rate in rates:
                # Interleaved per rate so background load on the shared machine hits both alike.
                for name, port in ports.items():
                    step = asyncio.run(offer(port, rate, args.step_s, name, args.connections))
                    results[name].append(step)
                    print(f"{_row(name, step)}   {load_average()}", flush=True)
                    time.sleep(1.0)
            print()
            for name, steps in results.items():
                knee = _knee(steps)
                knee_p99 = _percentile(knee.accepted_ms, 0.99) if knee else float("nan")
                peak = max(steps, key=lambda s: s.count("2xx"))
                beyond = [s for s in steps if knee is None or s.offered > knee.offered]
                worst_p99 = max((_percentile(s.accepted_ms, 0.99) for s in beyond), default=0.0)
                fives = sum(s.count("5xx") + s.count("503") + s.count("error") for s in steps)
                print(
                    f"{name}: knee {knee.offered if knee else 'n/a'} req/s "
                    f"(p99 {knee_p99:.1f} ms); "
                    f"peak accepted {peak.count('2xx') / peak.duration_s:.0f} req/s; "
                    f"worst accepted p99 past the knee {worst_p99:.1f} ms; "
                    f"5xx+errors {fives}; median 429 share past the knee "
                    f"{100 * statistics.median([s.share('429') for s in beyond] or [0]):.0f}%"
                )
        finally:
            for proc in (service, baseline):
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in (service, baseline):
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
