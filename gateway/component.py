"""The gateway as a :class:`agentlane.service.Component`: the ``/ws/{sessionId}`` endpoint, the
browser console at ``/``, one live source and one keepalive ticker for every socket."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry
from starlette.datastructures import Headers, QueryParams
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket

from agentlane.admission import RateLimiter, TenantCounts
from agentlane.auth import Authenticator, AuthUnavailable, Unauthorized, bearer_token
from agentlane.bus import EventBus
from agentlane.commands import Commands, is_identifier
from agentlane.logs import bind_log_context
from agentlane.store import EventStore
from gateway.history import HistoryReads
from gateway.hub import Hub
from gateway.metrics import GatewayMetrics
from gateway.protocol import (
    CLOSE_GOING_AWAY,
    CLOSE_INTERNAL,
    CLOSE_TRY_AGAIN_LATER,
    CLOSE_UNAUTHORIZED,
    MAX_FRAME_BYTES,
    error_frame,
    frames_json_schema,
)
from gateway.server_logs import tame_server_logs
from gateway.sockets import Connection, SocketPolicy
from gateway.sources import BusSource, LiveSource

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"

#: uvicorn's WebSocket settings, chosen by benchmarks/gateway_sockets.py (BENCHMARKS.md,
#: "Gateway"): the sans-I/O websockets protocol without permessage-deflate holds the most idle
#: sockets per MiB; the frame limit is the contract's; keepalive is the gateway's own JSON ping.
UVICORN_WS_OPTIONS: dict[str, Any] = {
    "ws": "websockets-sansio",
    "ws_per_message_deflate": False,
    "ws_max_size": MAX_FRAME_BYTES,
    "ws_ping_interval": None,
    "ws_ping_timeout": None,
    "backlog": 4096,
}
_LAST_EVENT_ID = re.compile(r"[0-9]{1,18}")
_CLOSE_POLICY = 1008
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})


@dataclass(frozen=True, slots=True)
class GatewayOptions:
    """Knobs of one gateway process; the defaults are the contract's."""

    socket: SocketPolicy = field(default_factory=SocketPolicy)
    #: How often the keepalive ticker looks at every socket.
    tick_s: float = 1.0
    #: Sockets one tenant may hold open on this process (0: no limit).
    max_tenant_sockets: int = 0
    #: Origins whose pages may open sockets (``*``: any); empty: the gateway's own only.
    allowed_origins: frozenset[str] = frozenset()
    #: History reads running at once (each holds a pooled connection); more wait, joinable.
    history_reads: int = 6
    #: How long a history read waits for identical requests to join it (a reconnect storm's
    #: sockets of one session arrive within milliseconds of each other).
    history_join_window_s: float = 0.01


class Gateway:
    """Streams sessions over WebSockets. Owns its live source and ticker, not the database."""

    name = "gateway"

    def __init__(
        self,
        *,
        store: EventStore,
        commands: Commands,
        authenticator: Authenticator,
        bus: EventBus | None = None,
        source: LiveSource | None = None,
        options: GatewayOptions | None = None,
        registry: CollectorRegistry | None = None,
        rate: RateLimiter | None = None,
    ) -> None:
        """Live events come from exactly one of ``bus`` (the process's one subscription) or
        ``source`` (something else that feeds the hub, e.g. a test's)."""
        if (bus is None) == (source is None):
            raise ValueError("give the gateway exactly one of a bus or a live source")
        self._commands = commands
        self._auth = authenticator
        self._rate = rate
        self.metrics = GatewayMetrics(registry or CollectorRegistry())
        self.source: LiveSource = source or BusSource(bus, self.metrics)  # type: ignore[arg-type]
        self.options = options or GatewayOptions()
        self.hub = Hub()
        self._reads = HistoryReads(
            store, self.metrics, concurrency=self.options.history_reads,
            join_window_s=self.options.history_join_window_s,
        )
        self.connections: set[Connection] = set()
        self._tenant_sockets = TenantCounts()
        self._draining = False
        self._group: asyncio.TaskGroup | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._emptied = asyncio.Event()
        tame_server_logs()

    async def __aenter__(self) -> Gateway:
        self._group = asyncio.TaskGroup()
        await self._group.__aenter__()
        self._tasks = [
            self._group.create_task(self.source.run(self.hub), name=f"live-{self.source.name}"),
            self._group.create_task(self._keepalive(), name="keepalive"),
        ]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for connection in tuple(self.connections):
            connection.close(CLOSE_GOING_AWAY, "server going away")
        for task in self._tasks:
            task.cancel()
        await self._reads.close()
        assert self._group is not None
        with contextlib.suppress(asyncio.CancelledError):
            await self._group.__aexit__(None, None, None)

    def routes(self) -> Sequence[BaseRoute]:
        return [
            WebSocketRoute("/ws/{session_id}", self.endpoint),
            Route("/", self._console),
            Route("/ws-schema.json", self._frames_schema, methods=["GET"]),
            Mount("/console", StaticFiles(directory=STATIC_DIR), name="console"),
        ]

    def is_ready(self) -> bool:
        return (
            not self._draining
            and self.source.ready.is_set()
            and not any(task.done() for task in self._tasks)
        )

    async def drain(self) -> None:
        """Stop accepting, close every socket with 1001 (clients reconnect elsewhere), wait."""
        self._draining = True
        for connection in tuple(self.connections):
            connection.close(CLOSE_GOING_AWAY, "server going away")
        if self.connections:
            self._emptied.clear()
            await self._emptied.wait()

    async def _console(self, _: Request) -> Response:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    async def _frames_schema(self, _: Request) -> Response:
        """``GET /ws-schema.json``: the JSON Schema of the socket's frames (public, like
        ``/openapi.json``)."""
        return JSONResponse(_frames_schema())

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(self.options.tick_s)
            now = time.monotonic()
            for connection in tuple(self.connections):
                connection.tick(now)

    async def endpoint(self, websocket: WebSocket) -> None:
        """``GET /ws/{sessionId}?lastEventId=N[&token=JWT]`` (docs/contract.md, "WebSocket")."""
        session_id = websocket.path_params["session_id"]
        if self._draining:
            await self._refuse(websocket, CLOSE_GOING_AWAY, "server going away", "draining")
            return
        # Read from the scope, not websocket.headers/query_params: those cache their parses on
        # the socket for its whole life (~0.5 KiB each of 10,000 sockets).
        headers = Headers(scope=websocket.scope)
        query = QueryParams(websocket.scope["query_string"])
        token = query.get("token") or bearer_token(headers.get("authorization"))
        if not self._origin_allowed(headers):
            # Before the handshake completes: the browser's page gets a failed connection (403).
            self.metrics.rejected.labels("origin").inc()
            await websocket.close(_CLOSE_POLICY)
            return
        try:
            identity = await self._auth.identify(token)
        except Unauthorized as exc:
            await self._refuse(websocket, CLOSE_UNAUTHORIZED, exc.reason, "unauthorized")
            return
        except AuthUnavailable:
            await self._refuse(
                websocket, CLOSE_INTERNAL, "cannot verify tokens now", "auth_unavailable"
            )
            return
        tenant_id = identity.tenant
        raw_after = query.get("lastEventId") or "0"
        # This frame lives as long as the socket: the handshake's parses and the token do not
        # stay in it (the raw request stays in the scope, as it does for any ASGI app).
        del token, headers, query
        # fullmatch, not isdigit(): "²" is a digit to Python and not to int().
        if not _LAST_EVENT_ID.fullmatch(raw_after):
            await self._refuse(
                websocket, _CLOSE_POLICY, "lastEventId must be a non-negative integer",
                "bad_request", code="invalid_last_event_id",
            )
            return
        if not is_identifier(session_id):
            await self._refuse(
                websocket, _CLOSE_POLICY, "sessionId must be 1-128 characters of [A-Za-z0-9._:-]",
                "bad_request", code="invalid_session_id",
            )
            return
        limit = self.options.max_tenant_sockets
        if limit and self._tenant_sockets.held(tenant_id) >= limit:
            await self._refuse(
                websocket, CLOSE_TRY_AGAIN_LATER,
                f"this tenant already has {limit} sockets open here; retry later",
                "too_many_sockets", code="too_many_sockets",
            )
            return
        await websocket.accept()
        connection = Connection(
            websocket,
            reads=self._reads,
            commands=self._commands,
            metrics=self.metrics,
            tenant_id=tenant_id,
            session_id=session_id,
            after_event_id=int(raw_after),
            policy=self.options.socket,
            rate=self._rate,
            expires_at=identity.expires_at,
        )
        self.connections.add(connection)
        self._tenant_sockets.add(tenant_id)
        self.metrics.sockets.inc()
        self.metrics.connects.inc()
        # The task is this socket's own (one per connection), so its context can be bound for
        # good rather than held in a context manager for the socket's life.
        bind_log_context(tenant=tenant_id, session=session_id)
        try:
            await connection.serve(self.hub)
        finally:
            self.connections.discard(connection)
            self._tenant_sockets.remove(tenant_id)
            self.metrics.sockets.dec()
            if not self.connections:
                self._emptied.set()

    def _origin_allowed(self, headers: Headers) -> bool:
        """A browser's page may open a socket only from an allowed origin: those
        ``AGENTLANE_ALLOWED_ORIGINS`` names (``*``: any), else the gateway's own (same host);
        without authentication only pages on this machine. Clients that are not browsers send
        no Origin."""
        origin = headers.get("origin")
        if origin is None:
            return True
        parts = urlsplit(origin)
        if self._auth.mode == "none" and parts.hostname not in _LOOPBACK:
            return False
        allowed = self.options.allowed_origins
        if allowed:
            return "*" in allowed or origin.rstrip("/") in allowed
        return parts.netloc != "" and parts.netloc == headers.get("host")

    async def _refuse(
        self,
        websocket: WebSocket,
        close_code: int,
        reason: str,
        metric: str,
        *,
        code: str | None = None,
    ) -> None:
        """Accept, explain, close: browsers only see close codes of sockets that were accepted."""
        self.metrics.rejected.labels(metric).inc()
        await websocket.accept()
        if code is not None:
            await websocket.send_text(error_frame(code, reason))
        await websocket.close(close_code, reason[:120])


@functools.cache
def _frames_schema() -> dict[str, Any]:
    return frames_json_schema()
