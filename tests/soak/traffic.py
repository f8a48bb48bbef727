"""What clients do during a soak: start runs open-loop, watch sessions over WebSockets, probe.

Runs arrive at a fixed mean rate whatever the stack's state (open loop: a slow stack gets a
queue, not fewer requests). A start that fails (a database restart, overload) is retried with the
same ``runId`` until it is accepted: the command API makes that idempotent. Watchers keep one socket
per (session, gateway) and reconnect after ``lastEventId`` whenever the socket drops.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from tests.fixtures.processes import Proc
from tests.soak.stack import JWT_SECRET

TERMINAL = {"completed", "failed", "cancelled"}


def token(tenant: str) -> str:
    return jwt.encode(
        {"tenant": tenant, "exp": int(time.time()) + 24 * 3600}, JWT_SECRET, algorithm="HS256"
    )


@dataclass
class Accepted:
    tenant: str
    session: str
    run_id: str
    execution_id: str


@dataclass
class Commands:
    """The command API as a service client uses it: retry until accepted, same runId."""

    edge: Proc
    accepted: list[Accepted] = field(default_factory=list)
    retries: int = 0

    def __post_init__(self) -> None:
        self._client = httpx.AsyncClient(base_url=self.edge.base_url, timeout=10)

    async def close(self) -> None:
        await self._client.aclose()

    async def start(self, tenant: str, session: str, run_id: str, *, deadline: float) -> Accepted:
        while True:
            try:
                response = await self._client.post(
                    f"/agents/{session}/runs",
                    json={"runId": run_id, "message": f"soak {run_id}"},
                    headers={"Authorization": f"Bearer {token(tenant)}"},
                )
                if response.status_code in (200, 202):
                    run = Accepted(tenant, session, run_id, response.json()["executionId"])
                    self.accepted.append(run)
                    return run
                if response.status_code < 500 and response.status_code != 429:
                    raise AssertionError(f"start {run_id}: {response.status_code} {response.text}")
            except httpx.HTTPError:
                pass
            self.retries += 1
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} was never accepted")
            await asyncio.sleep(0.2)

    async def status(self, run: Accepted) -> str | None:
        try:
            response = await self._client.get(
                f"/runs/{run.execution_id}",
                headers={"Authorization": f"Bearer {token(run.tenant)}"},
            )
        except httpx.HTTPError:
            return None
        return str(response.json()["status"]) if response.status_code == 200 else None


async def open_loop(
    commands: Commands, sessions: list[tuple[str, str]], *, rate: float, rng: random.Random,
    stop: asyncio.Event,
) -> None:
    """Start runs at ``rate`` per second on average (Poisson arrivals) until ``stop``."""
    pending: set[asyncio.Task[Accepted]] = set()
    number = 0
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), rng.expovariate(rate))
        if stop.is_set():
            break
        number += 1
        tenant, session = rng.choice(sessions)
        task = asyncio.create_task(
            commands.start(tenant, session, f"load-{number}", deadline=time.monotonic() + 120)
        )
        pending.add(task)
        task.add_done_callback(pending.discard)
    # Starts still retrying finish (accepted, or a violation the report names).
    await asyncio.gather(*pending, return_exceptions=True)


@dataclass
class Probe:
    """A fresh run started after a fault: how long until it completed, and which it was."""

    number: int
    started_at: float  # wall clock, to line up with the events' createdAt
    seconds: float | None = None
    execution_id: str | None = None


async def probe(commands: Commands, number: int, *, timeout_s: float = 120) -> Probe:
    """Start a run in a session of its own and time it until it ends (``seconds`` None: it did
    not within ``timeout_s``)."""
    result = Probe(number, time.time())
    started = time.monotonic()
    deadline = started + timeout_s
    name = f"probe-{number}"
    try:
        run = await commands.start("probe", name, name, deadline=deadline)
    except TimeoutError:
        return result
    result.execution_id = run.execution_id
    while time.monotonic() < deadline:
        if await commands.status(run) in TERMINAL:
            result.seconds = time.monotonic() - started
            return result
        await asyncio.sleep(0.1)
    return result


@dataclass
class Watcher:
    """One client of one session on one gateway, across reconnects."""

    gateway: Proc
    tenant: str
    session: str
    received: list[tuple[int, int]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    connects: int = 0
    _socket: ClientConnection | None = None

    @property
    def last_event_id(self) -> int:
        return self.received[-1][0] if self.received else 0

    def cut(self) -> None:
        """Drop the connection without a close handshake (a phone entering a tunnel)."""
        if self._socket is not None:
            self._socket.transport.abort()

    async def run(self, stop: asyncio.Event) -> None:
        assert self.gateway.port is not None
        while not stop.is_set():
            url = (
                f"ws://127.0.0.1:{self.gateway.port}/ws/{self.session}"
                f"?lastEventId={self.last_event_id}&token={token(self.tenant)}"
            )
            try:
                async with connect(url, open_timeout=5, max_size=None) as socket:
                    self._socket = socket
                    self.connects += 1
                    async for raw in socket:
                        self._take(json.loads(raw), socket)
            except (OSError, TimeoutError, WebSocketException):
                pass
            finally:
                self._socket = None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.3)

    def _take(self, frame: dict[str, Any], socket: ClientConnection) -> None:
        kind = frame.get("type")
        if kind == "ping":
            asyncio.get_running_loop().create_task(_send(socket, '{"type":"pong"}'))
        elif kind == "event":
            event = frame["event"]
            self.received.append((int(event["eventId"]), int(event["seq"])))
        elif kind == "error":
            self.errors.append(f"{frame.get('code')}: {frame.get('message')}")


async def _send(socket: ClientConnection, text: str) -> None:
    with contextlib.suppress(WebSocketException, OSError):
        await socket.send(text)
