"""Postgres LISTEN on a dedicated connection, reconnecting on its own: wake-ups, never truth.

Notifications are hints (something was appended, a shard has work, a peer released shards): every
user also polls, so a lost notification costs latency, never correctness. Every (re)connect is
reported, because anything may have happened while nobody was listening.

    Listener   each notification to a callback, forever (cancel it to stop)
    Wakeups    one channel as something a loop can wait on: ``await wakeups.wait(timeout_s)``
    Notifier   the sending side: NOTIFY after a commit, coalesced, never inside a writer's
               transaction
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from psycopg import sql

from agentlane.backoff import Backoff
from agentlane.errors import StoreError
from agentlane.logs import redact

logger = logging.getLogger(__name__)


def _nothing() -> None:
    return None


class Listener:
    """``await listener.run()`` forever; cancel it to stop."""

    def __init__(
        self,
        conninfo: str,
        channels: Sequence[str],
        *,
        on_notify: Callable[[str, str], None],
        on_connect: Callable[[], None] = _nothing,
        application_name: str = "agentlane-listen",
    ) -> None:
        self._conninfo = conninfo
        self._channels = list(channels)
        self._on_notify = on_notify
        self._on_connect = on_connect
        self._application_name = application_name
        self._backoff = Backoff(initial_s=0.2, maximum_s=5.0)

    async def run(self) -> None:
        while True:
            conn: psycopg.AsyncConnection[Any] | None = None
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self._conninfo,
                    autocommit=True,
                    connect_timeout=5,
                    application_name=self._application_name,
                )
                for channel in self._channels:
                    await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
                self._backoff.reset()
                self._on_connect()
                async for note in conn.notifies():
                    self._on_notify(note.channel, note.payload)
            except psycopg.Error as exc:
                # Only hints ride on this connection: any driver error means reconnect.
                delay = self._backoff.next_delay()
                logger.warning("notification connection lost; retry in %.1fs: %s", delay,
                               redact(str(exc)).strip())
                await asyncio.sleep(delay)
            finally:
                if conn is not None:
                    await conn.close()


class Wakeups:
    """A LISTEN channel as a wake-up: :meth:`wait` returns True once a notification arrived since
    the last wait (or the connection came back), False on timeout. Use ``async with``."""

    def __init__(self, conninfo: str, channel: str) -> None:
        self._arrived = asyncio.Event()
        self._listener = Listener(
            conninfo,
            [channel],
            on_notify=lambda _channel, _payload: self._arrived.set(),
            on_connect=self._arrived.set,
            application_name="agentlane-wakeups",
        )
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Wakeups:
        self._task = asyncio.get_running_loop().create_task(
            self._listener.run(), name="wakeups"
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._task is not None:
            self._task.cancel()
            # asyncio.wait, not await: a cancellation of our own caller must not be swallowed.
            await asyncio.wait([self._task])
            self._task = None

    async def wait(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for a wake-up; True if one arrived."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._arrived.wait()
        except TimeoutError:
            return False
        self._arrived.clear()
        return True


#: One transaction of notifications: asynchronous commit, because a wake-up needs no durability
#: and Postgres holds its notification lock until the commit returns.
_NOTIFY = (
    "SELECT set_config('synchronous_commit', 'off', true), pg_notify(n.channel, n.payload) "
    "FROM unnest(%s::text[], %s::text[]) AS n(channel, payload)"
)

Connect = Callable[[], contextlib.AbstractAsyncContextManager[psycopg.AsyncConnection[Any]]]


class Notifier:
    """Sends wake-ups after the writes they announce have committed.

    A NOTIFY inside a writer's transaction takes Postgres's notification lock at commit and holds
    it through the commit's fsync, so every writing transaction queues behind the one before and
    Postgres can never group their fsyncs. Here writers only call :meth:`notify` once committed;
    one task sends what accumulated in one short asynchronous-commit transaction, and what
    arrives meanwhile goes in the next: at most one NOTIFY transaction in flight per process,
    whatever the write rate. A failure is logged and dropped (listeners also poll).
    """

    def __init__(self, connect: Connect) -> None:
        self._connect = connect
        self._pending: set[tuple[str, str]] = set()
        self._task: asyncio.Task[None] | None = None

    def notify(self, channel: str, payload: str = "") -> None:
        """Wake ``channel``'s listeners soon; call only after the commit it announces."""
        self._pending.add((channel, payload))
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._send(), name="notifier")

    async def settle(self) -> None:
        """Wait until what was asked for has been sent (or dropped)."""
        if self._task is not None:
            await asyncio.wait([self._task])

    async def _send(self) -> None:
        while self._pending:
            batch, self._pending = sorted(self._pending), set()
            channels, payloads = zip(*batch, strict=True)
            try:
                async with self._connect() as conn:
                    await conn.execute(_NOTIFY, (list(channels), list(payloads)))
            except (psycopg.Error, StoreError) as exc:  # a hint was lost; readers poll
                logger.debug("wake-up not sent: %s", redact(str(exc)).strip())
