"""History then live over a real socket, the ready marker, tenant isolation, auth (4001)."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from typing import Any

import jwt
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from agentlane.auth import Authenticator
from tests.gateway.harness import gateway_thread


def frames_until(ws: ClientConnection, done: Any, timeout_s: float = 10) -> list[dict[str, Any]]:
    """Read frames until ``done(frames)`` is true; pings are answered, not returned."""
    frames: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    while not done(frames):
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"timed out; got {frames}"
        frame = json.loads(ws.recv(timeout=remaining))
        if frame["type"] == "ping":
            ws.send('{"type": "pong"}')
        else:
            frames.append(frame)
    return frames


def event_ids(frames: list[dict[str, Any]]) -> list[int]:
    return [f["event"]["eventId"] for f in frames if f["type"] == "event"]


def test_history_then_ready_then_live(database_url: str) -> None:
    with gateway_thread(database_url) as gw:
        first = gw.append("default", "s1", ["a", "b", "c"])
        gw.append("default", "other", ["x"])  # another session: never on this socket
        with connect(f"{gw.ws_url}/ws/s1?lastEventId={first[0].event_id}") as ws:
            frames = frames_until(ws, lambda f: f and f[-1]["type"] == "ready")
            assert event_ids(frames) == [first[1].event_id, first[2].event_id]
            assert frames[-1] == {"type": "ready", "lastEventId": first[2].event_id}
            live = gw.append("default", "s1", ["d", "e"])
            frames = frames_until(ws, lambda f: len(f) == 2)
            assert event_ids(frames) == [e.event_id for e in live]
            body = frames[0]["event"]
            assert body["seq"] == 4 and body["type"] == "Token" and body["data"]["text"] == "d"
            assert set(body) == {
                "eventId", "seq", "tenantId", "sessionId", "executionId", "type", "data",
                "createdAt",
            }


def test_empty_session_is_ready_at_the_given_id(database_url: str) -> None:
    with gateway_thread(database_url) as gw:
        elsewhere = gw.append("default", "elsewhere", ["x", "y"])[-1].event_id
        with connect(f"{gw.ws_url}/ws/nothing?lastEventId={elsewhere}") as ws:
            assert frames_until(ws, lambda f: len(f) == 1) == [
                {"type": "ready", "lastEventId": elsewhere}
            ]
            events = gw.append("default", "nothing", ["late"])
            assert event_ids(frames_until(ws, lambda f: len(f) == 1)) == [events[0].event_id]


SECRET = "s3cret-for-tests-only-0123456789abcdef"


def token(tenant: str) -> str:
    return jwt.encode({"tenant": tenant, "exp": int(time.time()) + 600}, SECRET, algorithm="HS256")


def test_tenants_see_only_their_own_stream(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The handshake line is DEBUG (gateway.server_logs): log at DEBUG to see what it holds.
    caplog.set_level(logging.DEBUG, logger="gateway")
    caplog.set_level(logging.DEBUG, logger="uvicorn.error")
    acme_token = token("acme")
    auth = Authenticator(mode="jwt", secret=SECRET)
    with gateway_thread(database_url, authenticator=auth) as gw:
        mine = gw.append("acme", "shared-name", ["acme-1"])
        gw.append("globex", "shared-name", ["globex-1"])
        # Browsers pass the token as a query parameter, other clients in the header.
        with (
            connect(f"{gw.ws_url}/ws/shared-name?token={acme_token}") as acme,
            connect(
                f"{gw.ws_url}/ws/shared-name",
                additional_headers={"Authorization": f"Bearer {token('initech')}"},
            ) as initech,
        ):
            frames = frames_until(acme, lambda f: f and f[-1]["type"] == "ready")
            assert event_ids(frames) == [mine[0].event_id]
            assert frames_until(initech, lambda f: len(f) == 1) == [
                {"type": "ready", "lastEventId": 0}
            ]
            gw.append("globex", "shared-name", ["globex-2"])
            later = gw.append("acme", "shared-name", ["acme-2"])
            assert event_ids(frames_until(acme, lambda f: len(f) == 1)) == [later[0].event_id]
            with pytest.raises(TimeoutError):
                initech.recv(timeout=0.5)
    # The server logs each handshake's path; the token in it never reaches the logs.
    assert "token=***" in caplog.text
    assert acme_token not in caplog.text


@pytest.mark.parametrize(
    "headers,query",
    [({}, ""), ({}, "?token=not-a-jwt"), ({"Authorization": "Bearer nope"}, "")],
)
def test_unauthorized_is_closed_with_4001(
    database_url: str, headers: dict[str, str], query: str
) -> None:
    auth = Authenticator(mode="jwt", secret=SECRET)
    with gateway_thread(database_url, authenticator=auth) as gw:
        gw.append("acme", "s", ["secret"])
        with connect(f"{gw.ws_url}/ws/s{query}", additional_headers=headers) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=5)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001


@pytest.mark.parametrize(
    "path", ["/ws/abc%0A", "/ws/s1?lastEventId=%C2%B2", "/ws/s1?lastEventId=-1"]
)
def test_bad_session_or_last_event_id_is_refused_with_1008(database_url: str, path: str) -> None:
    """Regressions: a trailing newline passed re.match("...$"); "²" passed str.isdigit()."""
    with gateway_thread(database_url) as gw, connect(f"{gw.ws_url}{path}") as ws:
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                ws.recv(timeout=5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


def test_ping_pong_keeps_a_socket_and_silence_closes_it(database_url: str) -> None:
    from gateway.component import GatewayOptions
    from gateway.sockets import SocketPolicy

    options = GatewayOptions(
        socket=SocketPolicy(ping_interval_s=0.3, pong_timeout_s=0.6), tick_s=0.05
    )
    with (
        gateway_thread(database_url, options=options) as gw,
        connect(f"{gw.ws_url}/ws/s", ping_interval=None) as answering,
        connect(f"{gw.ws_url}/ws/s", ping_interval=None) as silent,
    ):
        pings = 0
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                frame = json.loads(answering.recv(timeout=0.1))
                if frame["type"] == "ping":
                    assert isinstance(frame["t"], float)
                    pings += 1
                    answering.send('{"type": "pong"}')
        assert pings >= 3
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                silent.recv(timeout=5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011
        assert closed.value.rcvd.reason == "pong timeout"
        events = gw.append("default", "s", ["still here"])
        assert event_ids(frames_until(answering, lambda f: len(f) == 1)) == [events[0].event_id]


def test_a_socket_accepted_before_the_bus_subscribes_misses_nothing(database_url: str) -> None:
    # Committed after the socket's history read and before the subscription's start: the bus
    # never delivers it, so the subscription must make every socket re-read the store, or the
    # event waits for the session's next one.
    gate = threading.Event()
    with gateway_thread(database_url, subscribe_gate=gate) as gw:
        with connect(f"{gw.ws_url}/ws/s1?lastEventId=0") as ws:
            assert frames_until(ws, lambda f: bool(f)) == [{"type": "ready", "lastEventId": 0}]
            before = gw.append("default", "s1", ["committed before the subscription"])
            gate.set()
            frames = frames_until(ws, lambda f: bool(f))
            assert event_ids(frames) == [before[0].event_id]
            live = gw.append("default", "s1", ["live"])
            assert event_ids(frames_until(ws, lambda f: bool(f))) == [live[0].event_id]
