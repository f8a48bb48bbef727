"""Reads that share queries: many callers asking the same kind of question at once.

Every run start looks its idempotency key up before it writes (a taken key found inside a group
commit would roll the whole group back), and every advance of a run reads the run's journal. Under
load those are one query per request, beside a group commit that carries many requests per
transaction. A :class:`SharedReads` sends a read at once when fewer than ``max_in_flight`` of its
queries run (a lone caller waits for nobody); otherwise the read waits for the next query, which
answers every key waiting then (up to ``max_keys``) in one round trip. A read never joins a
query already sent, only one that starts after it asked, so it sees every write committed before
it asked (read-your-writes holds as for a query of its own): grouping changes no answer, only how
many round trips carry them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SharedReads(Generic[K, V]):
    """Coalesces concurrent reads by key into shared queries (module doc). ``fetch`` answers the
    value of each key that has one; a key it leaves out reads as ``missing``."""

    def __init__(
        self,
        fetch: Callable[[Sequence[K]], Awaitable[dict[K, V]]],
        missing: V,
        *,
        max_in_flight: int = 2,
        max_keys: int = 500,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self._fetch = fetch
        self._missing = missing
        self.max_in_flight = max_in_flight
        self.max_keys = max_keys
        self._running = 0
        self._waiting: dict[K, list[asyncio.Future[V]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        #: Queries sent (for benchmarks and tests).
        self.queries = 0

    async def get(self, key: K) -> V:
        """The value of ``key`` (``missing`` when there is none)."""
        if not self._waiting and self._running < self.max_in_flight:
            self._running += 1
            try:
                return (await self._query([key])).get(key, self._missing)
            finally:
                self._running -= 1
                self._start()
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, []).append(future)
        self._start()
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            waiters = self._waiting.get(key)
            if waiters is not None and future in waiters:
                waiters.remove(future)
                if not waiters:
                    del self._waiting[key]
            future.cancel()
            raise

    def _start(self) -> None:
        while self._waiting and self._running < self.max_in_flight:
            keys = list(self._waiting)[: self.max_keys]
            group = {key: self._waiting.pop(key) for key in keys}
            self._running += 1
            task = asyncio.get_running_loop().create_task(self._answer(group), name="shared-reads")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _answer(self, group: dict[K, list[asyncio.Future[V]]]) -> None:
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
                        future.set_result(found.get(key, self._missing))
        finally:
            self._running -= 1
            self._start()

    async def _query(self, keys: Sequence[K]) -> dict[K, V]:
        self.queries += 1
        return await self._fetch(keys)
