"""A real gateway on a real socket, served by uvicorn with the production WebSocket settings, on
its own event loop in a thread: tests (including hypothesis state machines, which are
synchronous) drive it through real WebSocket clients and append through its store."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

import uvicorn
from prometheus_client import CollectorRegistry

from agentlane.auth import Authenticator
from agentlane.bus import EventBus, PostgresBus
from agentlane.bus.base import Subscription
from agentlane.cli.embedded_pg import free_port
from agentlane.commands import Commands
from agentlane.db import open_database
from agentlane.records import NewEvent, StoredEvent
from agentlane.run_index import RunIndex
from agentlane.service import build_app
from agentlane.store import EventStore, Tail
from gateway import UVICORN_WS_OPTIONS, Gateway, GatewayOptions, LiveEvent
from tests.conftest import TEST_SHARDS

T = TypeVar("T")


class ManualSource:
    """A live source the test controls: it decides what the "bus" delivers, when, how often and
    in which order (the gateway must cope with all of it)."""

    name = "manual"

    def __init__(self) -> None:
        self.ready = asyncio.Event()
        self.hub: Any = None

    async def run(self, hub: Any) -> None:
        self.hub = hub
        self.ready.set()
        await asyncio.Event().wait()


class GatedBus:
    """The postgres bus, whose subscriptions start only once ``gate`` is set: a gateway whose bus
    is slow to subscribe (a restart, a Pub/Sub outage) while sockets are already accepted."""

    def __init__(self, bus: EventBus, gate: threading.Event) -> None:
        self._bus = bus
        self._gate = gate
        self.name = bus.name

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[Subscription]:
        await asyncio.to_thread(self._gate.wait)
        async with self._bus.subscribe() as subscription:
            yield subscription


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class GatewayThread:
    loop: asyncio.AbstractEventLoop
    gateway: Gateway
    store: EventStore
    port: int

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float = 30) -> T:
        """Run ``coro`` on the gateway's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def append(self, tenant: str, session: str, texts: Sequence[str]) -> list[StoredEvent]:
        """Append Token events in one transaction (what a runner's batch looks like)."""
        events = [
            NewEvent(tenant, session, "Token", {"text": text, "index": i}, execution_id="ex_t")
            for i, text in enumerate(texts)
        ]
        return self.run(self.store.append_batch(events))

    def deliver(self, events: Sequence[StoredEvent]) -> None:
        """Hand events to the hub as the bus would (only with a ManualSource)."""
        for event in events:
            self.loop.call_soon_threadsafe(self.gateway.hub.publish, LiveEvent.of(event))

    def sockets(self) -> int:
        return self.run(_count(self.gateway))


async def _count(gateway: Gateway) -> int:
    return len(gateway.connections)


@contextlib.contextmanager
def gateway_thread(
    database_url: str,
    *,
    manual: bool = False,
    options: GatewayOptions | None = None,
    authenticator: Authenticator | None = None,
    subscribe_gate: threading.Event | None = None,
) -> Iterator[GatewayThread]:
    """Serve a Gateway (the postgres bus, or a ManualSource) until the block ends. With
    ``subscribe_gate`` the bus subscribes only once it is set, and the block starts at once."""
    loop = asyncio.new_event_loop()
    started: Future[GatewayThread] = Future()
    stop = threading.Event()

    async def main() -> None:
        async with open_database(database_url, name="gw-test", min_size=1, max_size=10) as db:
            store = EventStore(db, shards=TEST_SHARDS)
            registry = CollectorRegistry()
            bus: EventBus = PostgresBus(store, Tail(db), poll_s=0.5)
            if subscribe_gate is not None:
                bus = GatedBus(bus, subscribe_gate)
            gateway = Gateway(
                store=store,
                commands=Commands(store, RunIndex(db)),
                authenticator=authenticator or Authenticator(mode="none"),
                bus=None if manual else bus,
                source=ManualSource() if manual else None,
                options=options,
                registry=registry,
            )
            port = free_port()
            config = uvicorn.Config(
                build_app([gateway], asyncio.Event(), registry=registry),
                host="127.0.0.1",
                port=port,
                log_config=None,
                lifespan="off",
                timeout_graceful_shutdown=2,
                **UVICORN_WS_OPTIONS,
            )
            server = _Server(config)
            async with gateway:
                serving = asyncio.create_task(server.serve())
                while not server.started:  # noqa: ASYNC110 - uvicorn offers only this flag
                    await asyncio.sleep(0.01)
                if subscribe_gate is None:
                    await gateway.source.ready.wait()
                started.set_result(GatewayThread(loop, gateway, store, port))
                await asyncio.to_thread(stop.wait)
                await asyncio.wait_for(gateway.drain(), 10)
                server.should_exit = True
                await serving

    def target() -> None:
        try:
            loop.run_until_complete(main())
        except BaseException as exc:  # surfaced to the test through the future
            if not started.done():
                started.set_exception(exc)
        finally:
            loop.close()

    thread = threading.Thread(target=target, name="gateway", daemon=True)
    thread.start()
    try:
        yield started.result(timeout=60)
    finally:
        stop.set()
        thread.join(timeout=30)
