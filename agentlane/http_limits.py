"""The limits uvicorn's HTTP/1.1 protocol lacks, for every component's server.

uvicorn bounds idle keep-alive connections and (with ``limit_concurrency``) requests, but a client
may take as long as it likes to send a request's headers and may send headers without end: 4
connections each sending an unfinished 64 MiB header grew a process by 262 MB, and 50 half-sent
headers stayed open past a minute. :class:`GuardedHttpToolsProtocol` is uvicorn's httptools
protocol with a deadline on each request's headers (a WebSocket handshake is a request's headers
too) and a cap on their size; a client over either gets ``408`` or ``431`` and its connection is
closed. Bodies have their own deadline where they are read (the command service's).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

#: Largest request head (request line and headers) accepted. A bearer token is about 1-2 KiB.
MAX_HEADER_BYTES = 32 * 1024
#: How long a client may take to send a request's headers, from its first byte (or from the
#: connection, for the first request).
HEADER_TIMEOUT_S = 20.0

_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}
#: How long a refused connection stays open, reading and dropping, after its answer.
_LINGER_S = 1.0


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header deadline and a header size cap."""

    max_header_bytes = MAX_HEADER_BYTES
    header_timeout_s = HEADER_TIMEOUT_S

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0
        self._in_head = False
        self._head_deadline: asyncio.TimerHandle | None = None
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._end_head()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # answered already: what the client still sends is dropped unread
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        # Checked after the parser had the bytes: a head and its body may share one read.
        if self._in_head and self._head_bytes > self.max_header_bytes:
            self._refuse(431)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._in_head:  # the next request on a kept-alive connection
            self._start_head()

    def on_headers_complete(self) -> None:
        self._end_head()
        super().on_headers_complete()

    def _start_head(self) -> None:
        self._in_head = True
        self._head_bytes = 0
        if self._head_deadline is None:
            self._head_deadline = self.loop.call_later(
                self.header_timeout_s, self._refuse, 408
            )

    def _end_head(self) -> None:
        self._in_head = False
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _refuse(self, status: int) -> None:
        self._end_head()
        if self.transport.is_closing() or self._refused:
            return
        self._refused = True
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            % (status, _REASONS[status])
        )
        # Closing with the client's bytes unread would reset the connection before it reads the
        # answer: end our side, drop what still arrives for a moment, then close.
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self.loop.call_later(_LINGER_S, self.transport.close)
        else:
            self.transport.close()


#: uvicorn options every component serves with (``agentlane.service.run_service``).
SERVER_LIMITS: dict[str, Any] = {
    "http": GuardedHttpToolsProtocol,
    # Beyond this many connections and requests, uvicorn answers 503 at once.
    "limit_concurrency": 20_000,
    # Longer than Google's load balancers keep idle connections to a backend (600 s): a backend
    # that closes first races the balancer's next request on that connection (a 502).
    "timeout_keep_alive": 620,
}
