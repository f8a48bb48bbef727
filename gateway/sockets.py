"""One accepted WebSocket: its feed (server → client), its commands (client → server), and the
single decision of how and why it ends."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from opentelemetry.trace import SpanKind
from starlette.websockets import WebSocket, WebSocketDisconnect

from agentlane import telemetry
from agentlane.admission import RateLimiter
from agentlane.commands import Commands
from agentlane.errors import AgentlaneError, StoreUnavailable
from agentlane.events import run_options
from gateway.handoff import SessionFeed
from gateway.history import HistoryReads
from gateway.hub import Hub
from gateway.metrics import GatewayMetrics
from gateway.protocol import (
    CLOSE_INTERNAL,
    CLOSE_SLOW_CONSUMER,
    CLOSE_TOO_BIG,
    CLOSE_UNAUTHORIZED,
    MAX_FRAME_BYTES,
    ApproveFrame,
    AskFrame,
    BadFrame,
    CancelFrame,
    PongFrame,
    error_frame,
    parse_inbound,
    ping_frame,
)

logger = logging.getLogger(__name__)

#: How a socket ends: its close code and reason (None while it streams).
Closing = tuple[int, str] | None


@dataclass(frozen=True, slots=True)
class SocketPolicy:
    """Per-socket limits. Defaults are docs/contract.md's (ping every 15 s)."""

    buffer_size: int = 1024
    page_size: int = 500
    #: A socket whose buffer overflows while one send has been stuck this long is closed (4008).
    stall_s: float = 2.0
    ping_interval_s: float = 15.0
    pong_timeout_s: float = 10.0
    close_timeout_s: float = 10.0


class Connection:
    """A socket of ``(tenant, session)`` that is streaming; :meth:`serve` returns when it ends.

    The receive loop runs in the ASGI handler's own task and the feed sends only while it has
    something to send, so an idle socket costs one task. Whoever decides the socket must end
    (overflow, pong timeout, drain, a failed send) calls :meth:`close`, which interrupts the
    receive loop.
    """

    __slots__ = (
        "_closing",
        "_commands",
        "_expires_at",
        "_handler",
        "_interrupted",
        "_metrics",
        "_opened_at",
        "_policy",
        "_rate",
        "_ws",
        "feed",
        "frames_at_ping",
        "next_ping_at",
        "ping_sent_at",
        "session_id",
        "tenant_id",
    )

    def __init__(
        self,
        websocket: WebSocket,
        *,
        reads: HistoryReads,
        commands: Commands,
        metrics: GatewayMetrics,
        tenant_id: str,
        session_id: str,
        after_event_id: int,
        policy: SocketPolicy,
        rate: RateLimiter | None = None,
        expires_at: float | None = None,
    ) -> None:
        self._ws = websocket
        self._commands = commands
        self._rate = rate
        #: When the token the socket was opened with expires (Unix seconds); None: never.
        self._expires_at = expires_at
        self._metrics = metrics
        self.tenant_id = tenant_id
        self.session_id = session_id
        self._policy = policy
        self._closing: Closing = None
        self._handler: asyncio.Task[object] | None = None
        self._interrupted = False
        self.feed = SessionFeed(
            reads,
            tenant_id=tenant_id,
            session_id=session_id,
            after_event_id=after_event_id,
            send=websocket.send_text,
            buffer_size=policy.buffer_size,
            page_size=policy.page_size,
            stall_s=policy.stall_s,
            on_overflow=self._slow_consumer,
            on_failure=self._send_failed,
        )
        self.feed.on_ready = self._ready
        self._opened_at = time.monotonic()
        self.ping_sent_at: float | None = None
        self.frames_at_ping = 0
        self.next_ping_at = time.monotonic() + policy.ping_interval_s

    def close(self, code: int, reason: str) -> None:
        """Decide how this socket ends (the first decision wins) and stop receiving."""
        if self._closing is not None or self._interrupted:
            return
        self._closing = (code, reason)
        self._interrupt()

    def _interrupt(self) -> None:
        self._interrupted = True
        if self._handler is not None and self._handler is not asyncio.current_task():
            self._handler.cancel()

    def _ready(self) -> None:
        self._metrics.replay_seconds.observe(time.monotonic() - self._opened_at)

    def _slow_consumer(self) -> None:
        self.close(CLOSE_SLOW_CONSUMER, "slow consumer")

    def _send_failed(self, exc: BaseException) -> None:
        if isinstance(exc, (WebSocketDisconnect, OSError, RuntimeError)):
            self._interrupt()  # the client is gone: nothing to close
        elif isinstance(exc, StoreUnavailable):
            logger.warning("store unavailable while streaming; closing the socket")
            self.close(CLOSE_INTERNAL, "store unavailable; reconnect")
        else:
            logger.error("streaming failed", exc_info=exc)
            self.close(CLOSE_INTERNAL, "internal error")

    def tick(self, now: float) -> None:
        """Keepalive and slow-consumer checks, called by the gateway's one ticker for every
        socket (no task per socket)."""
        if self._expired():
            return
        if self.feed.stalled(now):
            # One send has waited stall_s for the client to read: its buffers are full.
            self._slow_consumer()
            return
        if self.ping_sent_at is not None:
            if now - self.ping_sent_at > self._policy.pong_timeout_s:
                # Frames went out after the ping and none of them, nor the ping, was read: a
                # reader that stopped, whose kernel buffers have not filled yet (a slow stream).
                if self.feed.frames_sent > self.frames_at_ping + 1:
                    self._slow_consumer()
                else:
                    self.close(CLOSE_INTERNAL, "pong timeout")
            return
        if now >= self.next_ping_at:
            self.ping_sent_at = now
            self.next_ping_at = now + self._policy.ping_interval_s
            self.frames_at_ping = self.feed.frames_sent
            self.feed.send_control(ping_frame(round(time.time(), 3)))

    async def serve(self, hub: Hub) -> None:
        """Stream until the client leaves or the gateway closes the socket."""
        self._handler = asyncio.current_task()
        hub.subscribe(self.tenant_id, self.session_id, self.feed)
        try:
            self.feed.start()
            # The receive loop is inline, not a method: one coroutine frame less per socket.
            try:
                while not self._interrupted:
                    message = await self._ws.receive()
                    if message["type"] == "websocket.disconnect":
                        break
                    text = message.get("text")
                    if text is None:
                        await self._reject(BadFrame("binary_frame", "send JSON in text frames"))
                        continue
                    # Servers configured without a frame limit still get one here.
                    if len(text) > MAX_FRAME_BYTES or len(text.encode()) > MAX_FRAME_BYTES:
                        self.close(CLOSE_TOO_BIG, "frame larger than 64 KiB")
                        break
                    try:
                        await self._handle(parse_inbound(text))
                    except BadFrame as bad:
                        await self._reject(bad)
            except (WebSocketDisconnect, OSError, RuntimeError):
                pass  # the client is gone
        except asyncio.CancelledError:
            if not self._interrupted:
                raise  # cancelled from outside (server shutdown), not by close()
            assert self._handler is not None
            self._handler.uncancel()
        finally:
            hub.unsubscribe(self.tenant_id, self.session_id, self.feed)
            await self.feed.stop()
        if self._closing is not None:
            code, reason = self._closing
            self._metrics.closes.labels(str(code)).inc()
            # A client that stopped reading may never take the close frame: bounded wait, then
            # uvicorn drops the transport when this handler returns.
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self._policy.close_timeout_s):
                    await self._ws.close(code, reason)

    async def _reject(self, bad: BadFrame) -> None:
        self._metrics.bad_frames.labels(bad.code).inc()
        await self._ws.send_text(error_frame(bad.code, bad.message, bad.retry_after_s))

    def _expired(self) -> bool:
        """Close with 4001 once the socket's token has expired: nothing is done on its word
        after that (the client reconnects with a fresh token and ``lastEventId``)."""
        if self._expires_at is None or time.time() < self._expires_at:
            return False
        self.close(CLOSE_UNAUTHORIZED, "token expired")
        return True

    async def _handle(self, frame: AskFrame | CancelFrame | ApproveFrame | PongFrame) -> None:
        if self._expired():
            return
        if isinstance(frame, PongFrame):
            self.ping_sent_at = None
            return
        # A command's trace starts here: the events it appends carry it to the runner.
        with telemetry.span(
            "agentlane.gateway", f"ws {frame.type}", kind=SpanKind.SERVER,
            attributes={"agentlane.tenant": self.tenant_id, "agentlane.session": self.session_id},
        ):
            await self._command(frame)

    async def _command(self, frame: AskFrame | CancelFrame | ApproveFrame) -> None:
        outcome = "accepted"
        try:
            # The same per-tenant admission as the HTTP door: the rate here, the active-run cap
            # in the command's own transaction.
            if self._rate is not None:
                self._rate.take(self.tenant_id)
            if isinstance(frame, AskFrame):
                accepted = await self._commands.start_run(
                    tenant_id=self.tenant_id,
                    session_id=self.session_id,
                    run_id=frame.run_id,
                    message=frame.message,
                    on_conflict=frame.on_conflict,
                    approval_timeout_s=frame.approval_timeout_s,
                    options=run_options(frame.options),
                )
                outcome = "accepted" if accepted.created else "replayed"
            elif isinstance(frame, CancelFrame):
                await self._commands.cancel_run(
                    tenant_id=self.tenant_id, execution_id=frame.execution_id
                )
            elif isinstance(frame, ApproveFrame):
                await self._commands.signal_run(
                    tenant_id=self.tenant_id,
                    execution_id=frame.execution_id,
                    name=frame.name,
                    payload=frame.payload,
                )
        except AgentlaneError as exc:
            outcome = exc.code
            # The same code and detail an HTTP problem would carry (agentlane.errors).
            raise BadFrame(exc.code, exc.detail, exc.retry_after_s) from None
        finally:
            self._metrics.commands.labels(frame.type, outcome).inc()
