"""``agentlane dev`` end to end, as a user runs it: one process, a free port, a fresh data dir.

Over each bus: the Quickstart smoke (POST a run, its events live on the WebSocket, GET until
completed, a reconnect from the middle replays exactly the rest, a second run's model call carries
the first run in its history); a runner SIGKILLed while its run is inside a model call (the run
completes elsewhere and ``agentlane shards`` shows its shards re-leased); SIGTERM stops every child,
frees the port and stops PostgreSQL within 10 s; a restart on the same data dir replays the session.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psycopg
import pytest
from websockets.asyncio.client import ClientConnection, connect

from agentlane import cli
from agentlane.cli.embedded_pg import free_port, local_url
from agentlane.cli.operator_db import DEV_DATABASE
from agentlane.cli.pubsub_emulator import emulator_available
from agentlane.sharding import shard_for
from tests.dev.model_server import ModelServer
from tests.fixtures.processes import Proc, spawn

T = TypeVar("T")
SHARDS = 8
LEASE_TTL_S = 3
TERMINAL = {"Completed", "Failed", "Cancelled"}
COMPONENTS = {"edge", "projector", "runner-0", "runner-1"}


def _bus_params() -> list[Any]:
    required = os.environ.get("AGENTLANE_REQUIRE_PUBSUB") not in (None, "", "0")
    skip = pytest.mark.skipif(
        not emulator_available() and not required,
        reason="gcloud has no Pub/Sub emulator (set AGENTLANE_REQUIRE_PUBSUB=1 to fail instead)",
    )
    return [
        pytest.param("postgres", id="postgres"),
        pytest.param("pubsub", id="pubsub", marks=[pytest.mark.pubsub, skip]),
    ]


class DevStack:
    """One ``agentlane dev`` process and what a test needs to look inside it."""

    def __init__(self, proc: Proc, port: int, data_dir: Path) -> None:
        self.proc = proc
        self.port = port
        self.data_dir = data_dir

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws(self, session: str, last_event_id: int | None = None) -> str:
        query = "" if last_event_id is None else f"?lastEventId={last_event_id}"
        return f"ws://127.0.0.1:{self.port}/ws/{session}{query}"

    @property
    def database_url(self) -> str:
        pg_port = int((self.data_dir / "pg.port").read_text())
        return local_url(pg_port, DEV_DATABASE)

    def descendants(self) -> dict[int, str]:
        """pid -> name of every live process under ``agentlane dev``: an agentlane child by its
        POD_NAME or subcommand, anything else (the emulator's gcloud and java) by program."""
        parents: dict[int, int] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                except (FileNotFoundError, ProcessLookupError):
                    continue
                if fields[0] != "Z":
                    parents[int(entry.name)] = int(fields[1])
        found: dict[int, str] = {}
        frontier = [self.proc.pid]
        while frontier:
            parent = frontier.pop()
            for pid in [pid for pid, ppid in parents.items() if ppid == parent]:
                frontier.append(pid)
                found[pid] = _process_name(pid)
        return found

    def pid_of(self, name: str) -> int:
        """The pid ``agentlane dev --status`` gives for ``name`` (as the README's failover
        recipe takes it), checked against the process tree under this stack."""
        status = subprocess.run(
            [sys.executable, "-m", "agentlane.cli", "dev", "--status", "--data-dir",
             str(self.data_dir)], capture_output=True, text=True, timeout=60, check=True,
        ).stdout
        pids = [int(line.split()[1]) for line in status.splitlines() if line.split()[0] == name]
        matches = [pid for pid, child in self.descendants().items() if child == name]
        assert pids == matches and len(matches) == 1, f"{name}: {status} {self.descendants()}"
        return matches[0]

    def shards(self) -> list[dict[str, Any]]:
        """``agentlane shards --json``, the operator's view, run as the README says: from the
        directory of the dev stack, with no DATABASE_URL."""
        assert self.data_dir.name == ".agentlane"
        env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
        result = subprocess.run(
            [sys.executable, "-m", "agentlane.cli", "shards", "--json"],
            env=env, cwd=self.data_dir.parent, capture_output=True, text=True, timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert "using the agentlane dev database" in result.stderr, result.stderr
        return json.loads(result.stdout)

    def leases(self) -> dict[str, dict[int, int]]:
        """runner id -> {shard: lease token} of the live leases, straight from the table."""
        held: dict[str, dict[int, int]] = {}
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            for runner, shard, token in conn.execute(
                "SELECT runner_id, shard_id, lease_token FROM cluster_shards "
                "WHERE runner_id IS NOT NULL AND lease_expires_at > now()"
            ):
                held.setdefault(runner, {})[shard] = token
        return held

    def shard_owner(self, shard_id: int) -> tuple[str | None, int]:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT runner_id, lease_token FROM cluster_shards "
                "WHERE shard_id = %s AND lease_expires_at > now()",
                (shard_id,),
            ).fetchone()
        return (row[0], row[1]) if row else (None, 0)


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(entry.decode().split("=", 1) for entry in raw if b"=" in entry)


def _process_name(pid: int) -> str:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (FileNotFoundError, ProcessLookupError):
        return "?"
    if b"agentlane.cli" in argv:
        pod = next((e[9:].decode() for e in environ if e.startswith(b"POD_NAME=")), None)
        return pod or argv[argv.index(b"agentlane.cli") + 1].decode()
    return Path(argv[0].decode()).name


def _start(
    data_dir: Path, port: int, env: dict[str, str], log_dir: Path, name: str, *options: str
) -> DevStack:
    proc = spawn(
        name, ["dev", "--port", str(port), "--data-dir", str(data_dir), *options], env=env,
        log_dir=log_dir, port=port,
    )
    stack = DevStack(proc, port, data_dir)
    proc.wait_http("/readyz", timeout_s=150)
    return stack


async def _frames(ws: ClientConnection) -> AsyncIterator[dict[str, Any]]:
    """Data frames; pings are answered, as the contract asks of a client."""
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), 60))
        assert frame["type"] != "error", frame
        if frame["type"] == "ping":
            await ws.send(json.dumps({"type": "pong"}))
        else:
            yield frame


async def _until_ready(ws: ClientConnection) -> list[dict[str, Any]]:
    """History frames up to the ``ready`` frame."""
    events = []
    async for frame in _frames(ws):
        if frame["type"] == "ready":
            return events
        events.append(frame["event"])
    raise AssertionError("socket closed before ready")


async def _until_terminal(ws: ClientConnection, execution_id: str) -> list[dict[str, Any]]:
    events = []
    async for frame in _frames(ws):
        if frame["type"] == "event":
            events.append(frame["event"])
            if frame["event"]["executionId"] == execution_id and frame["event"]["type"] in TERMINAL:
                return events
    raise AssertionError("socket closed before the run ended")


async def _start_run(http: httpx.AsyncClient, session: str, run_id: str, message: str) -> str:
    response = await http.post(
        f"/agents/{session}/runs", json={"runId": run_id, "message": message}
    )
    assert response.status_code in (200, 202), response.text
    return str(response.json()["executionId"])


async def _wait_status(
    http: httpx.AsyncClient, execution_id: str, timeout_s: float = 60
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        body = (await http.get(f"/runs/{execution_id}")).json()
        if body.get("status") in ("completed", "failed", "cancelled"):
            return body
        assert time.monotonic() < deadline, f"run still {body.get('status')}: {body}"
        await asyncio.sleep(0.1)


async def _until(
    probe: Callable[[], T], done: Callable[[T], bool], what: str, timeout_s: float = 60
) -> T:
    """Call ``probe`` (blocking: in a thread) until ``done`` accepts its value."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = await asyncio.to_thread(probe)
        if done(value):
            return value
        assert time.monotonic() < deadline, f"{what}: not after {timeout_s}s: {value}"
        await asyncio.sleep(0.2)


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"


@pytest.mark.slow
@pytest.mark.parametrize("bus", _bus_params())
async def test_dev_stack_end_to_end(
    bus: str,
    tmp_path: Path,
    model_server: ModelServer,
    stacks: list[DevStack],
    capsys: pytest.CaptureFixture[str],
) -> None:
    data_dir, port = tmp_path / ".agentlane", free_port()
    env = {
        "AGENTLANE_BUS": bus,
        "AGENTLANE_SHARDS": str(SHARDS),
        "AGENTLANE_LEASE_TTL": str(LEASE_TTL_S),
        "OPENAI_BASE_URL": model_server.base_url,
        "OPENAI_API_KEY": "sk-loopback",
        "AGENTLANE_MODEL": "loopback-model",
    }
    stack = _start(data_dir, port, env, tmp_path, "dev")
    stacks.append(stack)
    # One stack per data dir: a second one is refused before it touches anything.
    refused = ["dev", "--port", str(free_port()), "--data-dir", str(data_dir)]
    assert cli.main(refused) == 1
    assert "another `agentlane dev` is using" in capsys.readouterr().err

    async with httpx.AsyncClient(base_url=stack.http, timeout=10) as http:
        # The smoke: the run's events arrive live on a socket opened before the POST.
        async with connect(stack.ws("session-1")) as ws:
            assert await _until_ready(ws) == []
            first = await _start_run(http, "session-1", "run-1", "hello there")
            live = await _until_terminal(ws, first)
        types = [e["type"] for e in live]
        assert types[0] == "RunAccepted" and types[-1] == "Completed", types
        assert {"RunStarted", "Token"} <= set(types), types
        assert [e["seq"] for e in live] == list(range(1, len(live) + 1))
        status = await _wait_status(http, first)
        assert status["status"] == "completed" and status["answer"] == "echo: hello there"

        # Reconnect from the middle: exactly the rest, in order, once each.
        middle = live[len(live) // 2 - 1]["eventId"]
        async with connect(stack.ws("session-1", middle)) as ws:
            replayed = await _until_ready(ws)
        assert [e["eventId"] for e in replayed] == [
            e["eventId"] for e in live if e["eventId"] > middle
        ]

        # A second run in the session sends the first exchange to the model.
        second = await _start_run(http, "session-1", "run-2", "and again")
        assert (await _wait_status(http, second))["status"] == "completed"
        history = model_server.requests_saying("and again")[0]["messages"]
        contents = [str(m.get("content")) for m in history]
        assert "hello there" in contents and "echo: hello there" in contents, history

        # A runner dies inside a model call: the run completes on a runner that re-leases.
        session = "session-failover"
        shard = shard_for("default", session, SHARDS)
        # Runner ids are POD_NAME/incarnation: a restarted runner-0 is a new holder.
        before = await _until(stack.leases, lambda held: sorted(
            (r.split("/")[0], len(shards)) for r, shards in held.items()
        ) == [("runner-0", SHARDS // 2), ("runner-1", SHARDS // 2)], "balanced leases")
        third = await _start_run(http, session, "run-3", "slow please")
        await asyncio.to_thread(model_server.wait_for_request, "slow please", 30)
        owner, token = stack.shard_owner(shard)
        assert owner in before and before[owner][shard] == token, (owner, before)
        # The components run as the app role, which cannot change history (tests/core/test_roles).
        victim = stack.pid_of(owner.split("/")[0])
        url = _environ(victim)["DATABASE_URL"]
        assert "-c role=agentlane_app" in url, url
        os.kill(victim, signal.SIGKILL)
        model_server.released.set()
        status = await _wait_status(http, third, timeout_s=90)
        assert status["status"] == "completed" and status["answer"] == "echo: slow please"
        assert len(model_server.requests_saying("slow please")) >= 2, "the step ran again"

        def moved(rows: list[dict[str, Any]]) -> bool:
            """Every shard of the dead runner is leased again, to a live runner, with a new
            token: what the operator sees in ``agentlane shards``."""
            after = {int(s): (row["runner"], t) for row in rows if row["runner"]
                     for s, t in row["tokens"].items()}
            return all(
                shard_id in after and after[shard_id][0] != owner and after[shard_id][1] > old
                for shard_id, old in before[owner].items()
            )

        await _until(stack.shards, moved, "the dead runner's shards re-leased", timeout_s=60)
        # The dev stack logged the crash and started the runner again; every line is tagged.
        log = stack.proc.log()
        # The banner came once every runner held its share; the shard moves before it were a
        # few lines, not one per shard.
        banner = log.index("agentlane dev is ready")
        assert log.count("claimed ", 0, banner) >= 2 and "released shard" not in log, log
        assert f"console     {stack.http}/?session=session-1" in log
        assert f"{owner.split('/')[0]} exited with code -9; restarting" in log
        for name in [*COMPONENTS, "dev"]:
            assert f"\n{name:<10} | " in log, name
        stack.pid_of(owner.split("/")[0])

        async with connect(stack.ws("session-1")) as ws:
            session_1 = await _until_ready(ws)

    # SIGTERM: every child gone, the port free and PostgreSQL stopped within 10 s.
    children = stack.descendants()
    components = sorted(n for n in children.values() if n in COMPONENTS)
    assert components == sorted(COMPONENTS), children
    if bus == "pubsub":
        assert set(children.values()) - COMPONENTS, f"no emulator under the dev stack: {children}"
    started = time.monotonic()
    stack.proc.signal(signal.SIGTERM)
    assert stack.proc.popen.wait(timeout=15) == 0, stack.proc.log()[-3000:]
    while not (all(_gone(pid) for pid in children) and _port_free(port)):
        assert time.monotonic() - started < 10, f"still alive after 10 s: {children}"
        await asyncio.sleep(0.05)
    assert time.monotonic() - started < 10
    assert not (data_dir / "pgdata" / "postmaster.pid").exists(), "PostgreSQL still running"

    if bus == "pubsub":
        return  # what survives a restart is the database's; once (over postgres) is enough
    # Same data dir again: the earlier session replays in full. Logs as JSON lines this time.
    again = _start(data_dir, port, env, tmp_path, "dev-again", "--json")
    stacks.append(again)
    async with connect(again.ws("session-1", 0)) as ws:
        replayed = await _until_ready(ws)
    assert [e["eventId"] for e in replayed] == [e["eventId"] for e in session_1]
    assert replayed[-1]["type"] == "Completed"
    deadline = time.monotonic() + 30
    while True:
        lines = [json.loads(line) for line in again.proc.log().splitlines() if line.strip()]
        sources = {line["process"] for line in lines}
        if COMPONENTS | {"dev"} <= sources:
            break
        assert time.monotonic() < deadline, f"no JSON lines from {COMPONENTS - sources}"
        await asyncio.sleep(0.2)


def test_dev_refuses_a_port_in_use(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code = cli.main(["dev", "--port", str(port), "--data-dir", str(tmp_path / "data")])
    assert code == 1
    assert capsys.readouterr().err == (
        f"agentlane dev: port {port} is in use; stop what listens there or pass --port\n"
    )
    assert not (tmp_path / "data").exists(), "nothing started for a refused command"
