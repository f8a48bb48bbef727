"""WebSocket client processes for the gateway benchmarks: many sockets per process, several
processes, so that the clients are not the bottleneck they measure.

A parent drives each :class:`ClientProcess` over a pipe: open sockets (one per session name
given), collect what they received, watch a reconnect storm, close. Each socket checks what it
gets as a real client would: ``seq`` without a gap or a duplicate, ``ready`` once, and on a close
it reconnects with the ``lastEventId`` it holds (storms).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import resource
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from websockets.asyncio.client import ClientConnection, connect


@dataclass
class Socket:
    session: str
    ws: ClientConnection | None = None
    last_event_id: int = 0
    last_seq: int | None = None
    ready_at: float | None = None
    latencies_ms: list[float] = field(default_factory=list)
    received: int = 0
    faults: int = 0
    closes: list[int] = field(default_factory=list)


class _Clients:
    def __init__(self, url: str, sessions: list[str], concurrency: int) -> None:
        self.url = url
        self.sockets = [Socket(s) for s in sessions]
        self.gate = asyncio.Semaphore(concurrency)
        self.tasks: list[asyncio.Task[None]] = []
        self.reconnect = True

    async def _connect(self, socket: Socket) -> None:
        async with self.gate:
            for attempt in range(600):
                try:
                    socket.ws = await connect(
                        f"{self.url}/ws/{socket.session}?lastEventId={socket.last_event_id}",
                        ping_interval=None, open_timeout=60, max_queue=None,
                    )
                    return
                except Exception:  # refused, reset, a handshake cut by a restart: retry
                    await asyncio.sleep(min(0.05 * (attempt + 1), 0.5))
            raise RuntimeError("cannot connect")

    async def _follow(self, socket: Socket) -> None:
        while True:
            await self._connect(socket)
            assert socket.ws is not None
            try:
                async for text in socket.ws:
                    now = time.time_ns()
                    frame = json.loads(text)
                    kind = frame["type"]
                    if kind == "event":
                        event = frame["event"]
                        if socket.last_seq is not None and event["seq"] != socket.last_seq + 1:
                            socket.faults += 1
                        socket.last_seq = event["seq"]
                        socket.last_event_id = event["eventId"]
                        socket.received += 1
                        socket.latencies_ms.append((now - int(event["data"]["text"])) / 1e6)
                    elif kind == "ready":
                        socket.ready_at = time.time()
                    elif kind == "ping":
                        await socket.ws.send('{"type":"pong"}')
            except Exception:  # closed, reset: reconnect below
                pass
            socket.closes.append(socket.ws.close_code or 1006)
            socket.ready_at = None
            if not self.reconnect:
                return

    async def open(self) -> None:
        self.tasks = [asyncio.create_task(self._follow(s)) for s in self.sockets]
        while any(s.ready_at is None for s in self.sockets):  # noqa: ASYNC110 - a poll
            await asyncio.sleep(0.05)

    async def collect(self, expected: int, timeout_s: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and any(  # noqa: ASYNC110 - a poll
            s.received < expected for s in self.sockets
        ):
            await asyncio.sleep(0.05)
        result = {
            "latencies_ms": [x for s in self.sockets for x in s.latencies_ms],
            "received": sum(s.received for s in self.sockets),
            "faults": sum(s.faults for s in self.sockets)
            + sum(1 for s in self.sockets if s.received > expected),
        }
        for socket in self.sockets:
            socket.latencies_ms.clear()
            socket.received = 0
        return result

    async def storm(self, timeout_s: float) -> dict[str, Any]:
        """Wait until every socket was closed and is ready again; when the last became ready."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not all(  # noqa: ASYNC110 - a poll
            s.closes and s.ready_at is not None for s in self.sockets
        ):
            await asyncio.sleep(0.02)
        readies = [s.ready_at for s in self.sockets if s.closes and s.ready_at is not None]
        return {"ready": len(readies), "last_ready_at": max(readies, default=0.0)}

    async def close(self) -> None:
        self.reconnect = False
        for chunk in range(0, len(self.sockets), 500):
            await asyncio.gather(
                *(s.ws.close() for s in self.sockets[chunk : chunk + 500] if s.ws),
                return_exceptions=True,
            )
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def _child(pipe: Connection, url: str, sessions: list[str], concurrency: int) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    async def main() -> None:
        clients = _Clients(url, sessions, concurrency)
        loop = asyncio.get_running_loop()
        while True:
            command, *args = await loop.run_in_executor(None, pipe.recv)
            if command == "open":
                started = time.perf_counter()
                await clients.open()
                pipe.send({"open_s": time.perf_counter() - started})
            elif command == "collect":
                pipe.send(await clients.collect(*args))
            elif command == "storm":
                pipe.send(await clients.storm(*args))
            elif command == "close":
                await clients.close()
                pipe.send({})
                return

    asyncio.run(main())


class ClientProcess:
    """One child process holding sockets for ``sessions`` (one socket per name)."""

    def __init__(self, url: str, sessions: list[str], concurrency: int = 100) -> None:
        context = multiprocessing.get_context("spawn")
        self._pipe, child = context.Pipe()
        self._process = context.Process(
            target=_child, args=(child, url, sessions, concurrency), daemon=True
        )
        self._process.start()

    def send(self, *command: object) -> None:
        self._pipe.send(command)

    def answer(self, timeout_s: float = 600) -> dict[str, Any]:
        if not self._pipe.poll(timeout_s):
            raise TimeoutError("client process did not answer")
        return self._pipe.recv()  # type: ignore[no-any-return]

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.send("close")
            self.answer(60)
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()


def spread(sockets: int, sessions: list[str], processes: int) -> list[list[str]]:
    """Socket ``i`` follows ``sessions[i % len]``; sockets dealt round-robin to the processes."""
    names = [sessions[i % len(sessions)] for i in range(sockets)]
    return [names[p::processes] for p in range(processes)]


def all_answer(clients: list[ClientProcess], *command: object) -> list[dict[str, Any]]:
    for client in clients:
        client.send(*command)
    return [client.answer() for client in clients]
