"""Idempotency look-ups that share queries: every run start asks whether its key is stored.

Each append with an idempotency key first looks the key up (a taken key found inside a group
commit would roll the whole group back and split it). Under load that look-up is one query per
request beside a group commit that carries many requests per transaction. Here a look-up goes at
once when fewer than ``max_in_flight`` queries run (a lone caller waits for nobody); otherwise it
waits for the next query, which answers every key waiting then (up to ``max_keys``) in one round
trip. A look-up is a read: grouping changes no outcome, only how many round trips carry them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from agentlane.records import StoredEvent

#: ``(tenant, idempotency key)``
Key = tuple[str, str]
#: Answers the stored event of each key that has one.
FetchKeys = Callable[[Sequence[Key]], Awaitable[dict[Key, StoredEvent]]]


class KeyLookups:
    """Coalesces concurrent look-ups of idempotency keys into shared queries (module doc)."""

    def __init__(self, fetch: FetchKeys, *, max_in_flight: int = 2, max_keys: int = 500) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self._fetch = fetch
        self.max_in_flight = max_in_flight
        self.max_keys = max_keys
        self._running = 0
        self._waiting: dict[Key, list[asyncio.Future[StoredEvent | None]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        #: Queries sent and keys they answered (for benchmarks and tests).
        self.queries = 0
        self.keys = 0

    async def find(self, tenant_id: str, key: str) -> StoredEvent | None:
        """The event stored with ``key`` for ``tenant_id``, or None."""
        wanted = (tenant_id, key)
        if not self._waiting and self._running < self.max_in_flight:
            self._running += 1
            try:
                return (await self._query([wanted])).get(wanted)
            finally:
                self._running -= 1
                self._start()
        future: asyncio.Future[StoredEvent | None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(wanted, []).append(future)
        self._start()
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            waiters = self._waiting.get(wanted)
            if waiters is not None and future in waiters:
                waiters.remove(future)
                if not waiters:
                    del self._waiting[wanted]
            future.cancel()
            raise

    def _start(self) -> None:
        while self._waiting and self._running < self.max_in_flight:
            keys = list(self._waiting)[: self.max_keys]
            group = {key: self._waiting.pop(key) for key in keys}
            self._running += 1
            task = asyncio.get_running_loop().create_task(self._answer(group), name="key-lookups")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _answer(self, group: dict[Key, list[asyncio.Future[StoredEvent | None]]]) -> None:
        try:
            found = await self._query(list(group))
        except BaseException as exc:
            for futures in group.values():
                for future in futures:
                    if not future.done():
                        if isinstance(exc, asyncio.CancelledError):
                            future.cancel()
                        else:
                            future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            for key, futures in group.items():
                for future in futures:
                    if not future.done():
                        future.set_result(found.get(key))
        finally:
            self._running -= 1
            self._start()

    async def _query(self, keys: Sequence[Key]) -> dict[Key, StoredEvent]:
        self.queries += 1
        self.keys += len(keys)
        return await self._fetch(keys)
