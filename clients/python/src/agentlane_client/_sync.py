"""The synchronous client: the asynchronous one, driven from a private event loop in a thread,
so both have one implementation (reconnects, resumption, folding) and the same answers."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from agentlane_client._async import AsyncClient, OnConflict
from agentlane_client._models import Event, Fork, Run, RunAccepted, SessionUsage
from agentlane_client.transcript import Change

__all__ = ["Client"]

T = TypeVar("T")


class _Loop:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="agentlane-client", daemon=True
        )
        self._thread.start()

    def run(self, awaitable: Awaitable[T]) -> T:
        async def call() -> T:
            return await awaitable

        return asyncio.run_coroutine_threadsafe(call(), self.loop).result()

    def iterate(self, iterator: AsyncIterator[T]) -> Iterator[T]:
        try:
            while True:
                try:
                    yield self.run(anext(iterator))
                except StopAsyncIteration:
                    return
        finally:
            # A caller that stops early closes the socket behind the iterator.
            self.run(iterator.aclose())  # type: ignore[attr-defined]

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        self.loop.close()


class Client:
    """``Client(base_url, token=…)``: the same operations as :class:`AsyncClient`, blocking.

    Use ``with`` (or call :meth:`close`).
    """

    def __init__(
        self, base_url: str = "http://127.0.0.1:8080", *, token: str | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        self._loop = _Loop()

        async def make() -> AsyncClient:
            return AsyncClient(base_url, token=token, timeout_s=timeout_s)

        self._async = self._loop.run(make())
        self.runs = Runs(self._async, self._loop)
        self.sessions = Sessions(self._async, self._loop)
        self.operations = Operations(self._async, self._loop)
        self.blobs = Blobs(self._async, self._loop)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._loop.run(self._async.aclose())
        self._loop.close()


class Runs:
    def __init__(self, client: AsyncClient, loop: _Loop) -> None:
        self._runs = client.runs
        self._loop = loop

    def create(
        self, session_id: str, message: str, *, run_id: str | None = None,
        on_conflict: OnConflict = "enqueue", approval_timeout_s: float | None = None,
        model: str | None = None, tools: Sequence[str] | None = None,
        system_prompt: str | None = None,
    ) -> RunAccepted:
        return self._loop.run(
            self._runs.create(
                session_id, message, run_id=run_id, on_conflict=on_conflict,
                approval_timeout_s=approval_timeout_s, model=model, tools=tools,
                system_prompt=system_prompt,
            )
        )

    def get(self, execution_id: str) -> Run:
        return self._loop.run(self._runs.get(execution_id))

    def cancel(self, execution_id: str, *, reason: str | None = None) -> int | None:
        return self._loop.run(self._runs.cancel(execution_id, reason=reason))

    def signal(self, execution_id: str, name: str, payload: Any = None) -> int:
        return self._loop.run(self._runs.signal(execution_id, name, payload))

    def approve(self, execution_id: str, call_id: str, *, approved: bool = True) -> int:
        return self._loop.run(self._runs.approve(execution_id, call_id, approved=approved))

    def stream(
        self, session_id: str, message: str, *, run_id: str | None = None,
        on_conflict: OnConflict = "enqueue",
    ) -> Iterator[Change]:
        return self._loop.iterate(
            self._runs.stream(session_id, message, run_id=run_id, on_conflict=on_conflict)
        )

    def follow(self, run: RunAccepted) -> Iterator[Change]:
        return self._loop.iterate(self._runs.follow(run))


class Sessions:
    def __init__(self, client: AsyncClient, loop: _Loop) -> None:
        self._sessions = client.sessions
        self._loop = loop

    def events(self, session_id: str, *, after: int = 0) -> Iterator[Event]:
        return self._loop.iterate(self._sessions.events(session_id, after=after))

    def page(
        self, session_id: str, *, after: int = 0, limit: int = 100
    ) -> tuple[list[Event], int | None]:
        return self._loop.run(self._sessions.page(session_id, after=after, limit=limit))

    def fork(self, session_id: str, at_event_id: int, new_session_id: str) -> Fork:
        return self._loop.run(self._sessions.fork(session_id, at_event_id, new_session_id))

    def usage(self, session_id: str) -> SessionUsage:
        return self._loop.run(self._sessions.usage(session_id))


class Blobs:
    def __init__(self, client: AsyncClient, loop: _Loop) -> None:
        self._blobs = client.blobs
        self._loop = loop

    def get(self, ref: Mapping[str, Any] | str | Any) -> Any:
        return self._loop.run(self._blobs.get(ref))


class Operations:
    def __init__(self, client: AsyncClient, loop: _Loop) -> None:
        self._operations = client.operations
        self._loop = loop

    def overview(self, *, days: int = 14) -> dict[str, Any]:
        return self._loop.run(self._operations.overview(days=days))
