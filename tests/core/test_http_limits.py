"""Every component's server cuts clients that send headers without end or too slowly: real
uvicorn with the guarded protocol on a real socket, and a real ``agentlane`` process."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from agentlane.cli.embedded_pg import free_port
from agentlane.http_limits import MAX_HEADER_BYTES, SERVER_LIMITS, GuardedHttpToolsProtocol
from tests.conftest import TEST_SHARDS, as_app
from tests.fixtures.processes import spawn, stop_all


class _QuickDeadline(GuardedHttpToolsProtocol):
    header_timeout_s = 0.5


async def _echo(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"{len(await request.body())}")


async def _ws(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.close()


@pytest.fixture
async def server() -> AsyncIterator[int]:
    app = Starlette(routes=[Route("/", _echo, methods=["GET", "POST"]), WebSocketRoute("/ws", _ws)])
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, lifespan="off",
        **{**SERVER_LIMITS, "http": _QuickDeadline},
    )
    served = uvicorn.Server(config)
    task = asyncio.create_task(served.serve())
    while not served.started:  # noqa: ASYNC110 (uvicorn offers no event to wait on)
        await asyncio.sleep(0.01)
    yield port
    served.should_exit = True
    await task


async def _exchange(port: int, *parts: bytes, pause_s: float = 0.0) -> bytes:
    """Send ``parts`` (pausing between them), then read until the server closes (or 5 s)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for part in parts:
            writer.write(part)
            await writer.drain()
            await asyncio.sleep(pause_s)
        async with asyncio.timeout(5):
            return await reader.read(-1)
    finally:
        writer.close()


async def test_headers_without_end_are_refused_with_431(server: int) -> None:
    answer = await _exchange(
        server, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ", b"a" * (4 * MAX_HEADER_BYTES)
    )
    assert answer.startswith(b"HTTP/1.1 431 ")


async def test_headers_sent_too_slowly_are_cut_with_408(server: int) -> None:
    started = time.monotonic()
    answer = await _exchange(server, b"GET / HTTP/1.1\r\nHost: x\r\n")
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert time.monotonic() - started < 5
    # A connection that sends nothing at all, and a WebSocket handshake left half-sent, too.
    assert (await _exchange(server)).startswith(b"HTTP/1.1 408 ")
    half = b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    assert (await _exchange(server, half)).startswith(b"HTTP/1.1 408 ")


async def test_a_big_body_and_kept_alive_requests_are_not_heads(server: int) -> None:
    body = b"b" * (4 * MAX_HEADER_BYTES)
    request = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    closing = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    # Two requests on one connection, the second after a pause longer than the head deadline:
    # idle time between requests is keep-alive's, not a slow head.
    answer = await _exchange(server, request, closing, pause_s=0.8)
    assert answer.count(b"HTTP/1.1 200 ") == 2 and str(len(body)).encode() in answer


@pytest.mark.slow
def test_a_component_process_refuses_a_huge_header(database_url: str, tmp_path: Path) -> None:
    """The limits are the server's for every component: ``agentlane command-service`` here."""
    env = {"DATABASE_URL": as_app(database_url), "AGENTLANE_SHARDS": str(TEST_SHARDS)}
    proc = spawn("command-service", ["command-service", "--host", "127.0.0.1"], env=env,
                 log_dir=tmp_path)
    try:
        proc.wait_http("/healthz")
        assert proc.port is not None
        with socket.create_connection(("127.0.0.1", proc.port), timeout=10) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200_000)
            assert sock.recv(64).startswith(b"HTTP/1.1 431 ")
    finally:
        stop_all([proc])
