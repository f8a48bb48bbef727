"""LISTEN on a dedicated connection and hand each notification to a callback.

Notifications are hints (a shard has new work, a peer released shards): the runner also polls,
so a lost notification costs latency, never correctness. The connection reconnects with jittered
backoff, and every (re)connect is reported so the caller can re-check what it may have missed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from psycopg import sql

from agentlane.db import Backoff
from agentlane.logs import redact

logger = logging.getLogger(__name__)


class Listener:
    """``await listener.run()`` forever; cancel it to stop."""

    def __init__(
        self,
        database_url: str,
        channels: Sequence[str],
        *,
        on_notify: Callable[[str, str], None],
        on_connect: Callable[[], None],
        application_name: str,
    ) -> None:
        self._url = database_url
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
                    self._url,
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
                # Only a wake-up hint rides on this connection (work is also polled): any driver
                # error means reconnect, never stop the runner.
                delay = self._backoff.next_delay()
                logger.warning("notification connection lost; retry in %.1fs: %s", delay,
                               redact(str(exc)).strip())
                await asyncio.sleep(delay)
            finally:
                if conn is not None:
                    await conn.close()

