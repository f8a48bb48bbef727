"""The W3C trace context of the request being served, on every log line the request causes.

Google's load balancers and Cloud Run pass a ``traceparent`` header; a request (or a WebSocket
handshake) that carries a valid one runs inside ``log_context(trace=…, span=…,
trace_sampled=…)``, which :class:`agentlane.logs.CloudLoggingFormatter` writes as Cloud Logging's
trace fields. A malformed header is ignored (it is the caller's, not ours to refuse).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable

from starlette.types import ASGIApp, Receive, Scope, Send

from agentlane.logs import log_context

# version 00: trace-id (32 hex, not all zero), parent-id (16 hex, not all zero), flags (2 hex).
_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16


def parse_traceparent(value: str | None) -> tuple[str, str, bool] | None:
    """``(trace_id, span_id, sampled)`` of a W3C ``traceparent``, or None when it is not one."""
    match = _TRACEPARENT.match(value.strip()) if value else None
    if match is None or match[1] == _ZERO_TRACE or match[2] == _ZERO_SPAN:
        return None
    return match[1], match[2], bool(int(match[3], 16) & 1)


class TraceContextMiddleware:
    """ASGI middleware: run each HTTP request and WebSocket in its ``traceparent``'s context."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Without a trace context the app's own awaitable is returned: no frame of ours stays
        # suspended for the life of each of a gateway's 10,000 sockets.
        if scope["type"] in ("http", "websocket"):
            header = next(
                (v for k, v in scope.get("headers", ()) if k == b"traceparent"), None
            )
            parsed = parse_traceparent(header.decode("latin-1") if header else None)
            if parsed is not None:
                return self._traced(parsed, scope, receive, send)
        return self.app(scope, receive, send)

    async def _traced(
        self, parsed: tuple[str, str, bool], scope: Scope, receive: Receive, send: Send
    ) -> None:
        trace, span, sampled = parsed
        with log_context(trace=trace, span=span, trace_sampled=sampled):
            await self.app(scope, receive, send)
