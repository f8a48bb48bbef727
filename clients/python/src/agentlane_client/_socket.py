"""A session's WebSocket: its events as an async iterator that reconnects by itself and resumes
after the last ``eventId`` it delivered (no gap, no duplicate), and the ``ask``/``cancel``/
``approve`` commands over the same socket.

Commands travel on the socket that :meth:`SessionSocket.events` keeps open, so send them from the
loop or from another task while it runs. They are delivered at most once: a frame sent into a
socket that is being cut is lost (``ask`` is safe to repeat with the same ``runId``; the HTTP API
answers every command); a refused command comes back as an ``error`` frame, kept in ``errors``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from agentlane_client._backoff import Backoff
from agentlane_client._errors import ConnectionLost, GatewayError
from agentlane_client._models import Event

logger = logging.getLogger("agentlane_client")

__all__ = ["SessionSocket"]

_UNAUTHORIZED = 4001


class SessionSocket:
    """One session's events from a gateway, resumed across disconnects by ``lastEventId``.

    Args:
        base_url: the gateway (``http(s)://`` or ``ws(s)://``), e.g. ``http://127.0.0.1:8080``.
        session_id: the session to follow.
        token: a bearer token (sent as ``Authorization``), or None when auth is off.
        after: resume after this ``eventId`` (0: the whole session).
        backoff_max_s: the longest pause between reconnect attempts (jittered exponential).
    """

    def __init__(
        self,
        base_url: str,
        session_id: str,
        *,
        token: str | None = None,
        after: int = 0,
        backoff_max_s: float = 5.0,
    ) -> None:
        parts = urlsplit(base_url)
        scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
        self._base = urlunsplit((scheme, parts.netloc, parts.path.rstrip("/"), "", ""))
        self.session_id = session_id
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.last_event_id = after
        self._backoff = Backoff(initial_s=0.05, maximum_s=backoff_max_s)
        self._ws: ClientConnection | None = None
        self._connected = asyncio.Event()
        #: Set once the gateway has sent the history of the current connection.
        self.ready = asyncio.Event()
        #: Close codes seen so far (e.g. 1001 on a gateway restart, 4008 when we fell behind).
        self.close_codes: list[int] = []
        #: ``error`` frames the gateway answered (bad frames, refused commands).
        self.errors: list[GatewayError] = []
        self.connections = 0

    async def __aenter__(self) -> SessionSocket:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()

    def _url(self) -> str:
        return f"{self._base}/ws/{quote(self.session_id, safe='')}?lastEventId={self.last_event_id}"

    async def events(self) -> AsyncIterator[Event]:
        """Every event of the session after ``after``, once each, in ``seq`` order, for as long
        as the caller iterates; reconnects (and resumes) whenever the socket drops. Raises
        ConnectionLost when the gateway refuses the token (4001)."""
        while True:
            try:
                async with connect(
                    self._url(), additional_headers=self._headers, ping_interval=None,
                    max_size=None,
                ) as ws:
                    self._ws = ws
                    self.connections += 1
                    self._connected.set()
                    async for event in self._stream(ws):
                        yield event
                self.close_codes.append(ws.close_code or 1006)
            except ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd is not None else 1006
                self.close_codes.append(code)
                if code == _UNAUTHORIZED:
                    raise ConnectionLost(code, closed.rcvd.reason if closed.rcvd else "") from None
                logger.info("socket closed (%s); resuming after %s", code, self.last_event_id)
            except (OSError, InvalidHandshake, TimeoutError) as exc:
                logger.info("cannot connect (%s); retrying", exc)
            finally:
                self._ws = None
                self._connected.clear()
                self.ready.clear()
            await self._backoff.sleep()

    async def _stream(self, ws: ClientConnection) -> AsyncIterator[Event]:
        async for text in ws:
            frame = json.loads(text)
            kind = frame.get("type")
            if kind == "event":
                event = Event.model_validate(frame["event"])
                # The gateway guarantees once-only; this guard keeps the promise through a
                # misbehaving proxy too.
                if event.event_id <= self.last_event_id:
                    continue
                self.last_event_id = event.event_id
                yield event
            elif kind == "ready":
                self._backoff.reset()
                self.ready.set()
            elif kind == "ping":
                await ws.send('{"type":"pong"}')
            elif kind == "error":
                logger.warning("gateway error: %s", frame)
                self.errors.append(GatewayError(
                    str(frame.get("code")), str(frame.get("message")), frame.get("retryAfter")
                ))

    async def _send(self, frame: dict[str, Any], timeout_s: float) -> None:
        async with asyncio.timeout(timeout_s):
            while True:
                await self._connected.wait()
                ws = self._ws
                if ws is None:
                    continue
                try:
                    await ws.send(json.dumps(frame))
                    return
                except ConnectionClosed:
                    await asyncio.sleep(0.05)  # the iterator reconnects; send again then

    async def ask(
        self, run_id: str, message: str, *, on_conflict: str = "enqueue", timeout_s: float = 30
    ) -> None:
        """Start a run in this session (``runId`` makes retries safe: one run per id)."""
        await self._send(
            {"type": "ask", "runId": run_id, "message": message, "onConflict": on_conflict},
            timeout_s,
        )

    async def cancel(self, execution_id: str, *, timeout_s: float = 30) -> None:
        await self._send({"type": "cancel", "executionId": execution_id}, timeout_s)

    async def approve(
        self, execution_id: str, name: str, payload: Any = None, *, timeout_s: float = 30
    ) -> None:
        """Deliver the signal ``name`` (an approval) to a suspended run."""
        await self._send(
            {"type": "approve", "executionId": execution_id, "name": name, "payload": payload},
            timeout_s,
        )
