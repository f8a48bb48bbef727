"""A socket lives no longer than its token, and browsers' pages may open sockets only from
allowed origins: through the real gateway on a real socket."""

from __future__ import annotations

import json
import logging
import time

import jwt
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from agentlane.auth import Authenticator
from gateway import GatewayOptions
from tests.gateway.harness import gateway_thread
from tests.gateway.test_stream import SECRET, frames_until


def _token(tenant: str, ttl_s: float) -> str:
    return jwt.encode({"tenant": tenant, "exp": _expiry(ttl_s)}, SECRET, "HS256")


def _expiry(ttl_s: float) -> int:
    return int(time.time() + ttl_s)


def test_a_socket_is_closed_with_4001_when_its_token_expires(database_url: str) -> None:
    options = GatewayOptions(tick_s=0.2)
    auth = Authenticator(mode="jwt", secret=SECRET)
    with (
        gateway_thread(database_url, authenticator=auth, options=options) as gw,
        connect(f"{gw.ws_url}/ws/s?token={_token('acme', 2)}") as ws,
    ):
        assert frames_until(ws, lambda f: len(f) == 1)[0]["type"] == "ready"
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                frame = json.loads(ws.recv(timeout=10))
                if frame["type"] == "ping":
                    ws.send(json.dumps({"type": "pong"}))
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001
        assert closed.value.rcvd.reason == "token expired"
        # Nothing was started on the expired token's word, and nothing could be.
        assert gw.run(gw.store.session_exists("acme", "s")) is False


def test_a_command_sent_after_expiry_is_not_carried_out(database_url: str) -> None:
    # A slow ticker: the command arrives after the expiry, before the ticker looks.
    options = GatewayOptions(tick_s=30)
    auth = Authenticator(mode="jwt", secret=SECRET)
    expires = _expiry(2)
    token = jwt.encode({"tenant": "acme", "exp": expires}, SECRET, "HS256")
    with (
        gateway_thread(database_url, authenticator=auth, options=options) as gw,
        connect(f"{gw.ws_url}/ws/s?token={token}") as ws,
    ):
        frames_until(ws, lambda f: len(f) == 1)
        time.sleep(max(0.0, expires - time.time() + 0.2))
        ws.send(json.dumps({"type": "ask", "runId": "late", "message": "hi"}))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001
        assert gw.run(gw.store.session_exists("acme", "s")) is False


@pytest.mark.parametrize(
    ("allowed", "origin", "opens"),
    [
        (frozenset(), None, True),  # not a browser
        (frozenset(), "same", True),
        (frozenset(), "https://evil.example", False),
        (frozenset({"https://app.example.com"}), "https://app.example.com", True),
        (frozenset({"https://app.example.com"}), "https://evil.example", False),
        (frozenset({"*"}), "https://evil.example", True),
    ],
)
def test_only_allowed_origins_open_sockets(
    database_url: str, allowed: frozenset[str], origin: str | None, opens: bool
) -> None:
    auth = Authenticator(mode="jwt", secret=SECRET)
    options = GatewayOptions(allowed_origins=allowed)
    with gateway_thread(database_url, authenticator=auth, options=options) as gw:
        url = f"{gw.ws_url}/ws/s?token={_token('acme', 600)}"
        if origin == "same":
            origin = f"http://127.0.0.1:{gw.port}"
        headers = {} if origin is None else {"Origin": origin}
        if opens:
            with connect(url, additional_headers=headers) as ws:
                assert frames_until(ws, lambda f: len(f) == 1)[0]["type"] == "ready"
        else:
            with pytest.raises(InvalidStatus) as refused:
                connect(url, additional_headers=headers)
            assert refused.value.response.status_code == 403


def test_without_authentication_only_this_machines_pages_open_sockets(database_url: str) -> None:
    options = GatewayOptions(allowed_origins=frozenset({"*"}))
    with gateway_thread(database_url, options=options) as gw:
        url = f"{gw.ws_url}/ws/s"
        with connect(url, additional_headers={"Origin": "http://localhost:3000"}) as ws:
            assert frames_until(ws, lambda f: len(f) == 1)[0]["type"] == "ready"
        with pytest.raises(InvalidStatus):
            connect(url, additional_headers={"Origin": "https://evil.example"})


def test_a_token_under_a_percent_encoded_name_is_still_kept_out_of_the_logs(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """``?%74oken=`` is ``token`` to the server (it authenticates), so it is one to the logs."""
    # The handshake line is DEBUG (gateway.server_logs): log at DEBUG to see what it holds.
    caplog.set_level(logging.DEBUG, logger="gateway")
    caplog.set_level(logging.DEBUG, logger="uvicorn.error")
    token = _token("acme", 600)
    auth = Authenticator(mode="jwt", secret=SECRET)
    with (
        gateway_thread(database_url, authenticator=auth) as gw,
        connect(f"{gw.ws_url}/ws/s?%74oken={token}&lastEventId=0") as ws,
    ):
        assert frames_until(ws, lambda f: len(f) == 1)[0]["type"] == "ready"
    assert "%74oken=***" in caplog.text
    assert token not in caplog.text


def test_accepted_sockets_are_logged_at_debug_only(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A reconnect storm would write three INFO lines per socket."""

    def handshake_lines() -> list[logging.LogRecord]:
        return [
            r for r in caplog.records
            if r.name == "uvicorn.error"
            and ("/ws/s" in r.getMessage() or r.getMessage().startswith("connection "))
        ]

    caplog.set_level(logging.INFO, logger="uvicorn.error")
    caplog.set_level(logging.INFO, logger="gateway")
    with gateway_thread(database_url) as gw:
        with connect(f"{gw.ws_url}/ws/s") as ws:
            assert frames_until(ws, lambda f: len(f) == 1)[0]["type"] == "ready"
        assert handshake_lines() == []
        caplog.set_level(logging.DEBUG, logger="gateway")
        caplog.set_level(logging.DEBUG, logger="uvicorn.error")
        with connect(f"{gw.ws_url}/ws/s") as ws:
            assert frames_until(ws, lambda f: len(f) == 1)[0]["type"] == "ready"
        lines = handshake_lines()
        assert {r.levelno for r in lines} == {logging.DEBUG}
        assert any("[accepted]" in r.getMessage() for r in lines)
        assert any(r.getMessage() == "connection open" for r in lines)
