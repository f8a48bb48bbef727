"""The whole stack as real processes, and the faults the soak injects into it.

PostgreSQL (embedded, fsync on), Google's Pub/Sub emulator, the loopback OpenAI-compatible model,
and ``agentlane`` children: the edge (command API + gateway, on the Pub/Sub bus), a second gateway
on the postgres bus, the projector (publishing to Pub/Sub) and ``runners`` runners. Each child has
its own process group and log file, so a fault can SIGKILL or SIGSTOP exactly one of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from agentlane.cli.embedded_pg import EmbeddedPostgres, free_port
from agentlane.cli.pubsub_emulator import PubSubEmulator
from agentlane.migrate import migrate
from tests.conftest import as_app
from tests.fixtures.openai_server import OpenAIServer, Reply
from tests.fixtures.processes import Proc, spawn

SHARDS = 16
LEASE_TTL_S = 3.0
JWT_SECRET = "soak-secret-that-is-long-enough-for-hs256"
PROJECT = "agentlane-soak"
DATABASE = "agentlane"


@dataclass(frozen=True)
class ModelFaults:
    """How the loopback model answers: mostly slow streamed answers, sometimes a fault."""

    words: int = 24
    chunk_delay_s: float = 0.02
    rate_limited: float = 0.04
    server_error: float = 0.04
    cut: float = 0.04

    def chooser(self, rng: random.Random) -> Reply:
        roll = rng.random()
        if roll < self.rate_limited:
            return Reply.error(429, retry_after="1")
        roll -= self.rate_limited
        if roll < self.server_error:
            return Reply.error(500)
        roll -= self.server_error
        text = " ".join(f"w{i}" for i in range(self.words))
        if roll < self.cut:
            return Reply.cut(text, after=rng.randint(2, self.words))
        return Reply.answer(text, chunk_delay_s=self.chunk_delay_s)


@dataclass(frozen=True)
class ChildSpec:
    """How to (re)start one child: ``agentlane ARGS`` with ``env``, on ``port``."""

    args: tuple[str, ...]
    env: dict[str, str]
    port: int


@dataclass
class Stack:
    """Started by :func:`running_stack`; every fault method leaves the stack whole again."""

    root: Path
    postgres: EmbeddedPostgres
    emulator: PubSubEmulator
    model: OpenAIServer
    specs: dict[str, ChildSpec]
    procs: dict[str, Proc] = field(default_factory=dict)
    #: Children a fault has taken down on purpose (not to be restarted by :meth:`restart_dead`).
    down: set[str] = field(default_factory=set)

    @property
    def database_url(self) -> str:
        return self.postgres.url(DATABASE)

    @property
    def runners(self) -> list[str]:
        return sorted(name for name in self.specs if name.startswith("runner-"))

    def gateways(self) -> list[Proc]:
        """Where sockets connect: the edge (Pub/Sub bus) and the gateway (postgres bus)."""
        return [self.procs["edge"], self.procs["gateway"]]

    def start(self, name: str) -> Proc:
        spec = self.specs[name]
        self.procs[name] = spawn(
            name, [*spec.args, "--host", "127.0.0.1"], env=spec.env, log_dir=self.root / "logs",
            port=spec.port,
        )
        return self.procs[name]

    # --- faults -------------------------------------------------------------------------------

    async def kill(self, name: str, down_s: float) -> None:
        """SIGKILL a child (a crash, an OOM kill) and start it again under its name later."""
        self.down.add(name)
        try:
            self.procs[name].kill()
            await asyncio.sleep(down_s)
            self.start(name)
        finally:
            self.down.discard(name)

    async def pause(self, name: str, paused_s: float) -> None:
        """SIGSTOP a child (a GC pause, a frozen VM): a runner paused past its lease TTL is
        fenced out."""
        proc = self.procs[name]
        os.killpg(proc.pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(paused_s)
        finally:
            os.killpg(proc.pid, signal.SIGCONT)

    async def restart_postgres(self) -> None:
        """An immediate shutdown (no checkpoint: crash recovery on start) and a start."""
        await asyncio.to_thread(self.postgres.stop, "immediate")
        await asyncio.to_thread(self.postgres.start)

    async def freeze_pubsub(self, frozen_s: float) -> None:
        """SIGSTOP the emulator: publishes and pulls hang until it thaws."""
        self.emulator.pause()
        try:
            await asyncio.sleep(frozen_s)
        finally:
            self.emulator.resume()

    def restart_dead(self) -> list[str]:
        """Start again any child that exited on its own (a violation: the soak says so)."""
        died = [n for n, p in self.procs.items() if n not in self.down and not p.alive()]
        for name in died:
            self.start(name)
        return died

    def stop(self) -> None:
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGCONT)
            with contextlib.suppress(Exception):
                proc.terminate(timeout_s=10)
            if proc.alive():
                proc.kill()


def _specs(env: dict[str, str], runners: int) -> dict[str, ChildSpec]:
    specs = {
        "edge": ChildSpec(("edge", "--rate", "1000"), env, free_port()),
        "gateway": ChildSpec(("gateway",), {**env, "AGENTLANE_BUS": "postgres"}, free_port()),
        "projector": ChildSpec(("projector",), env, free_port()),
    }
    for index in range(runners):
        name = f"runner-{index}"
        specs[name] = ChildSpec(("runner",), {**env, "POD_NAME": name}, free_port())
    return specs


def _base_env(
    postgres: EmbeddedPostgres, emulator: PubSubEmulator, model: OpenAIServer
) -> dict[str, str]:
    return {
        # The components run as the app role, as in production.
        "DATABASE_URL": as_app(postgres.url(DATABASE)),
        "AGENTLANE_SHARDS": str(SHARDS),
        "AGENTLANE_LEASE_TTL": str(LEASE_TTL_S),
        "AGENTLANE_AUTH": "jwt",
        "AGENTLANE_JWT_SECRET": JWT_SECRET,
        "AGENTLANE_BUS": "pubsub",
        "PUBSUB_EMULATOR_HOST": emulator.host_port,
        "GOOGLE_CLOUD_PROJECT": PROJECT,
        "OPENAI_BASE_URL": model.base_url,
        "OPENAI_API_KEY": "sk-soak",
        "AGENTLANE_MODEL": "loopback-main",
        "AGENTLANE_MODEL_FALLBACK": "loopback-spare",
        "AGENTLANE_LOG_LEVEL": "WARNING",
        "AGENTLANE_DB_POOL_MAX": "6",
    }


@contextlib.contextmanager
def running_stack(
    *, runners: int, rng: random.Random, model_faults: ModelFaults
) -> Iterator[Stack]:
    """Start everything, wait until it is ready, stop everything at the end. The data and logs
    directory stays: the caller removes it once the soak passed."""
    root = Path(tempfile.mkdtemp(prefix="agentlane-soak-"))
    postgres = EmbeddedPostgres(root / "pgdata")
    emulator = PubSubEmulator(root / "pubsub")
    model = OpenAIServer(choose=lambda: model_faults.chooser(rng))
    stack: Stack | None = None
    try:
        postgres.start()
        with psycopg.connect(postgres.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {DATABASE}")
        migrate(postgres.url(DATABASE), shards=SHARDS)
        emulator.start()
        model.__enter__()
        specs = _specs(_base_env(postgres, emulator, model), runners)
        stack = Stack(root=root, postgres=postgres, emulator=emulator, model=model, specs=specs)
        for name in specs:
            stack.start(name)
        for proc in stack.procs.values():
            proc.wait_http("/readyz", timeout_s=120)
        yield stack
    finally:
        if stack is not None:
            stack.stop()
        emulator.resume()
        with contextlib.suppress(Exception):
            model.close()
        emulator.stop()
        postgres.stop("fast")
