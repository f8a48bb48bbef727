"""Commands on a WebSocket meet the same per-tenant admission as HTTP POSTs, through a real
``agentlane edge`` process (the command API and the gateway on one port, as ``agentlane dev``
serves them): a one-socket flood cannot pass the active-run cap or the rate, each refused command
gets an ``error`` frame with a stable code and ``retryAfter`` on a socket that stays open, and
another tenant is never refused meanwhile."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import psycopg
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.conftest import TEST_SHARDS, as_app
from tests.fixtures.processes import Proc, spawn, stop_all

pytestmark = pytest.mark.slow

SECRET = "s3cret-for-tests-only-0123456789abcdef"


def token(tenant: str) -> str:
    return jwt.encode({"tenant": tenant, "exp": int(time.time()) + 600}, SECRET, algorithm="HS256")


@pytest.fixture
def edge_with(database_url: str, tmp_path: Path) -> Iterator[Any]:
    started: list[Proc] = []

    def start(**limits: str) -> Proc:
        env = {
            "DATABASE_URL": as_app(database_url),
            "AGENTLANE_SHARDS": str(TEST_SHARDS),
            "AGENTLANE_BUS": "postgres",
            "AGENTLANE_AUTH": "jwt",
            "AGENTLANE_JWT_SECRET": SECRET,
            # No runner runs: every accepted run stays unfinished, so the cap is what counts.
            **{f"AGENTLANE_CMD_{name.upper()}": value for name, value in limits.items()},
        }
        edge = spawn("edge", ["edge", "--host", "127.0.0.1"], env=env, log_dir=tmp_path)
        started.append(edge)
        edge.wait_http("/readyz", timeout_s=60)
        return edge

    yield start
    stop_all(started)


@contextlib.contextmanager
def _socket(edge: Proc, tenant: str, session: str) -> Iterator[ClientConnection]:
    with connect(f"ws://127.0.0.1:{edge.port}/ws/{session}?token={token(tenant)}") as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "ready"
        yield ws


def _ask(ws: ClientConnection, run_id: str) -> None:
    ws.send(json.dumps({"type": "ask", "runId": run_id, "message": "flood"}))


def _frames(ws: ClientConnection, *, errors: int, events: int) -> list[dict[str, Any]]:
    """Frames until at least ``errors`` error frames and ``events`` events have arrived."""
    return _until(ws, lambda got: sum(f["type"] == "error" for f in got) >= errors
                  and sum(f["type"] == "event" for f in got) >= events)


def _until(
    ws: ClientConnection, done: Callable[[list[dict[str, Any]]], bool]
) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    while not done(frames):
        frame = json.loads(ws.recv(timeout=30))
        if frame["type"] == "ping":
            ws.send(json.dumps({"type": "pong"}))
            continue
        frames.append(frame)
    return frames


def _post(edge: Proc, tenant: str, session: str, run_id: str) -> httpx.Response:
    return httpx.post(
        f"{edge.base_url}/agents/{session}/runs", json={"runId": run_id, "message": "m"},
        headers={"Authorization": f"Bearer {token(tenant)}"}, timeout=10,
    )


def _active_runs(database_url: str, tenant: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM run_index WHERE tenant_id = %s", (tenant,))
        found = row.fetchone()
    assert found is not None
    return int(found[0])


def _metric(edge: Proc, line_start: str) -> float:
    text = httpx.get(edge.base_url + "/metrics", timeout=10).text
    values = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(line_start)]
    return sum(values)


def test_a_one_socket_flood_cannot_pass_the_active_run_cap(
    edge_with: Any, database_url: str
) -> None:
    edge = edge_with(max_active_runs="5", rate="10000", burst="10000")
    with _socket(edge, "tenant-a", "flood") as flood:
        for n in range(60):
            _ask(flood, f"a-{n}")
        frames = _frames(flood, errors=55, events=5)
        errors = [f for f in frames if f["type"] == "error"]
        assert {e["code"] for e in errors} == {"too_many_active_runs"}
        assert all(e["retryAfter"] >= 1 for e in errors)
        # The socket stays open: the next command is answered too.
        _ask(flood, "a-late")
        assert _frames(flood, errors=1, events=0)[0]["code"] == "too_many_active_runs"
        assert _active_runs(database_url, "tenant-a") == 5

        # Tenant B, meanwhile, on both doors: never refused.
        with _socket(edge, "tenant-b", "steady") as steady:
            _ask(steady, "b-1")
            (accepted,) = _frames(steady, errors=0, events=1)
            assert accepted["event"]["type"] == "RunAccepted"
        b = _post(edge, "tenant-b", "steady", "b-2")
        assert b.status_code == 202, b.text
        a = _post(edge, "tenant-a", "flood", "a-http")
        assert a.status_code == 429 and int(a.headers["retry-after"]) >= 1
    assert _active_runs(database_url, "tenant-a") == 5
    assert _metric(edge, 'agentlane_gateway_commands_total{command="ask",outcome="accepted"}') == 6
    assert _metric(
        edge, 'agentlane_gateway_commands_total{command="ask",outcome="too_many_active_runs"}'
    ) == 56
    assert _metric(edge, 'agentlane_admission_rejections_total{reason="active_runs"}') == 1


def test_a_one_socket_flood_meets_the_tenants_rate_shared_with_http(edge_with: Any) -> None:
    """One bucket per tenant for both doors of the process: A's socket spends what its HTTP
    requests would have had; B's bucket is its own."""
    edge = edge_with(rate="1", burst="3", max_active_runs="1000")
    with _socket(edge, "tenant-a", "flood") as flood:
        started = time.monotonic()
        for n in range(20):
            _ask(flood, f"a-{n}")
        frames = _until(flood, lambda got: len(got) >= 20)
        elapsed = time.monotonic() - started
        accepted = [f for f in frames if f["type"] == "event"]
        errors = [f for f in frames if f["type"] == "error"]
        assert {e["code"] for e in errors} == {"rate_limited"}
        assert all(e["retryAfter"] >= 1 for e in errors)
        assert 3 <= len(accepted) <= 3 + int(elapsed) + 1
        a = httpx.get(f"{edge.base_url}/runs/ex_none",
                      headers={"Authorization": f"Bearer {token('tenant-a')}"}, timeout=10)
        assert a.status_code == 429
    with _socket(edge, "tenant-b", "steady") as steady:
        _ask(steady, "b-1")
        assert _frames(steady, errors=0, events=1)[0]["event"]["type"] == "RunAccepted"


def test_a_tenant_holds_at_most_its_sockets(edge_with: Any) -> None:
    edge = edge_with(max_tenant_sockets="2")
    url = f"ws://127.0.0.1:{edge.port}/ws/s?token={token('tenant-a')}"
    with _socket(edge, "tenant-a", "s"), _socket(edge, "tenant-a", "s") as second:
        with connect(url) as third:
            refused = json.loads(third.recv(timeout=10))
            assert refused["type"] == "error" and refused["code"] == "too_many_sockets"
            with pytest.raises(ConnectionClosed) as closed:
                third.recv(timeout=10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
        with _socket(edge, "tenant-b", "s"):
            pass  # another tenant's socket is not counted against A
        second.close()
        # A closed socket gives its place back (once the gateway has seen the close).
        deadline = time.monotonic() + 10
        while True:
            with connect(url) as again:
                if json.loads(again.recv(timeout=10))["type"] == "ready":
                    break
            assert time.monotonic() < deadline, "the closed socket's place never came back"
            time.sleep(0.05)
