"""``agentlane dev``: the whole stack on this machine in one command.

Order of things: take the data directory's lock (one dev stack per directory), start the embedded
PostgreSQL under ``<data-dir>/pgdata`` on the port remembered in ``<data-dir>/pg.port`` (unless
``DATABASE_URL`` is set), apply migrations, start the Pub/Sub emulator when the bus is ``pubsub``,
then supervise the children: the edge (command API + gateway on ``--port``), ``--runners`` runners
named ``runner-0`` … and the projector. Every child line is printed tagged with its name (JSON lines
with ``--json``). SIGINT/SIGTERM stops the children (SIGTERM, SIGKILL after a few seconds), then the
emulator, then PostgreSQL (fast shutdown: committed data is kept).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import fcntl
import json
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO

import httpx
import psycopg
from psycopg import sql

from agentlane.cli import dev_status
from agentlane.cli.dev_status import StackStatus
from agentlane.cli.embedded_pg import EmbeddedPostgres, free_port
from agentlane.cli.operator_db import DEV_DATA_DIR, DEV_DATABASE
from agentlane.cli.pubsub_emulator import PubSubEmulator, emulator_available
from agentlane.cli.supervisor import ChildSpec, Supervisor
from agentlane.db import with_session_options
from agentlane.errors import ConfigError
from agentlane.logs import redact
from agentlane.migrate import migrate
from agentlane.pricing import DEV_PRICES
from agentlane.settings import Settings

logger = logging.getLogger(__name__)

DEFAULT_PROJECT = "agentlane-dev"
#: SIGTERM-to-SIGKILL delay per child: the whole stop must fit well inside 10 s.
CHILD_STOP_TIMEOUT_S = 5.0
READY_TIMEOUT_S = 120.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=8080, help="HTTP + WebSocket port (8080)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (127.0.0.1)")
    parser.add_argument(
        "--data-dir", type=Path, default=DEV_DATA_DIR,
        help="embedded database and emulator state (./.agentlane)",
    )
    parser.add_argument(
        "--status", action="store_true",
        help="print the pids and URLs of the stack running on --data-dir (JSON with --json)",
    )
    parser.add_argument(
        "--json", dest="log_json", action="store_true", help="JSON log lines instead of text"
    )
    parser.add_argument("--runners", type=int, default=2, help="number of shard runners (2)")


@dataclass(frozen=True, slots=True)
class Bus:
    """The live fan-out the children use, and the variables that select it."""

    name: str
    env: Mapping[str, str]


def main(args: argparse.Namespace, settings: Settings) -> int:
    if args.status:
        return _print_status(args.data_dir.resolve(), json_out=args.log_json)
    if not 0 < args.port < 65536:
        raise ConfigError(f"--port {args.port} is not a TCP port")
    if args.runners < 1:
        raise ConfigError("--runners must be at least 1")
    if not _port_is_free(args.port):
        raise ConfigError(f"port {args.port} is in use; stop what listens there or pass --port")
    data_dir = args.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    with _exclusive(data_dir):
        printer = _Printer(sys.stdout, json_lines=args.log_json)
        _log_through(printer)
        # SIGTERM while the database starts must still run the cleanups below, like Ctrl-C.
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            with database(settings, data_dir) as database_url:
                migrate(
                    database_url, shards=settings.shards, app_role=settings.app_role,
                    audit_role=settings.audit_role,
                )
                # The components run as the app role, as they do in production: they cannot
                # change history. (A DATABASE_URL of your own is used as you give it.)
                components_url = (
                    database_url if settings.database_url is not None
                    else with_session_options(database_url, role=settings.app_role)
                )
                with _bus(settings, data_dir) as bus:
                    env = _child_env(
                        settings, components_url, bus, data_dir, json_lines=args.log_json
                    )
                    specs, ports = _children(args, env)
                    status = _status(args, bus, database_url)
                    try:
                        asyncio.run(_supervise(args, specs, ports, status, data_dir, printer))
                    finally:
                        dev_status.clear(data_dir)
        except KeyboardInterrupt:
            logger.info("interrupted")
        logger.info("stopped")
    return 0


def _print_status(data_dir: Path, *, json_out: bool) -> int:
    status = dev_status.read(data_dir)
    if json_out:
        sys.stdout.write(json.dumps(dataclasses.asdict(status), indent=2) + "\n")
    else:
        sys.stdout.write("\n".join(status.lines()) + "\n")
    return 0


def _status(args: argparse.Namespace, bus: Bus, database_url: str) -> StackStatus:
    host = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    base = f"http://{host}:{args.port}"
    return StackStatus(
        pid=os.getpid(), host=host, http=base, console=f"{base}/?session=session-1",
        database=redact(database_url), bus=bus.name,
    )


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _already_stopping(signum: int, frame: FrameType | None) -> None:
    logger.info("already stopping")


def _log_through(printer: _Printer) -> None:
    """Our own lines join the children's on stdout, tagged ``dev``: one stream, one format."""
    root = logging.getLogger()
    handler = _PrinterHandler(printer)
    for configured in root.handlers:
        handler.setFormatter(configured.formatter)
        for log_filter in configured.filters:
            handler.addFilter(log_filter)
    root.handlers[:] = [handler]


@contextlib.contextmanager
def _exclusive(data_dir: Path) -> Iterator[None]:
    """One dev stack per data directory; the lock dies with the process, never goes stale."""
    with (data_dir / dev_status.LOCK_FILE).open("a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(
                f"another `agentlane dev` is using {data_dir}; stop it or pass --data-dir"
            ) from None
        yield


@contextlib.contextmanager
def database(settings: Settings, data_dir: Path) -> Iterator[str]:
    """``DATABASE_URL`` as given, or the URL of the embedded server under ``data_dir/pgdata``,
    running for the block on the port remembered in ``data_dir/pg.port``. The caller holds the
    data directory's lock, so a server found running was left by a killed stack: it is restarted.
    """
    if settings.database_url is not None:
        yield settings.require_database_url()
        return
    port_file = data_dir / "pg.port"
    server = EmbeddedPostgres(data_dir / "pgdata", port=_read_port(port_file))
    try:
        if server.is_running():
            # We hold the data-dir lock, so this is the server of a dev stack that was killed.
            logger.warning("stopping a PostgreSQL left running by an earlier `agentlane dev`")
            server.stop(mode="fast")
        server.port = _usable_port(port_file, server.port)
        server.start()
        _ensure_database(server.url(), DEV_DATABASE)
        logger.info("embedded PostgreSQL on 127.0.0.1:%d (%s)", server.port, server.data_dir)
        yield server.url(DEV_DATABASE)
    finally:
        logger.info("stopping PostgreSQL")
        server.stop(mode="fast")


def _read_port(port_file: Path) -> int | None:
    try:
        return int(port_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _usable_port(port_file: Path, port: int) -> int:
    """The data directory keeps its port across restarts unless something else took it."""
    if not _port_is_free(port):
        logger.warning("port %d of the embedded PostgreSQL is taken; choosing another", port)
        port = free_port()
    if _read_port(port_file) != port:
        port_file.write_text(f"{port}\n")
    return port


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _ensure_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


@contextlib.contextmanager
def _bus(settings: Settings, data_dir: Path) -> Iterator[Bus]:
    """Postgres, or Pub/Sub through an emulator: the given one, else one we start.

    The dev stack never talks to real Pub/Sub; without an emulator it falls back to postgres.
    """
    if settings.bus == "postgres":
        yield Bus("postgres", {"AGENTLANE_BUS": "postgres"})
        return
    project = settings.google_cloud_project or DEFAULT_PROJECT
    if settings.pubsub_emulator_host:
        yield Bus("pubsub", _pubsub_env(settings.pubsub_emulator_host, project))
        return
    if not emulator_available():
        logger.warning(
            "AGENTLANE_BUS=pubsub but gcloud has no Pub/Sub emulator "
            "(apt-get install google-cloud-cli-pubsub-emulator); using the postgres bus"
        )
        yield Bus("postgres", {"AGENTLANE_BUS": "postgres"})
        return
    emulator = PubSubEmulator(data_dir / "pubsub")
    emulator.start()
    try:
        logger.info("Pub/Sub emulator on %s (project %s)", emulator.host_port, project)
        yield Bus("pubsub", _pubsub_env(emulator.host_port, project))
    finally:
        logger.info("stopping the Pub/Sub emulator")
        emulator.stop()


def _pubsub_env(host_port: str, project: str) -> dict[str, str]:
    return {
        "AGENTLANE_BUS": "pubsub",
        "PUBSUB_EMULATOR_HOST": host_port,
        "GOOGLE_CLOUD_PROJECT": project,
    }


def _child_env(
    settings: Settings, database_url: str, bus: Bus, data_dir: Path, *, json_lines: bool
) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("AGENTLANE_RUNNER_ID", "POD_NAME", "PORT"):
        env.pop(name, None)
    env.update(bus.env)
    env["DATABASE_URL"] = database_url
    env["AGENTLANE_LOG_FORMAT"] = "json" if json_lines else "text"
    # The approval flow, ready to try from the console: "call send_email" asks a human first.
    env.setdefault("AGENTLANE_DEMO_TOOLS", "1")
    # The offline model streams word by word, so streaming shows without a real model.
    env.setdefault("AGENTLANE_OFFLINE_PACE", "20")
    # Made-up prices for the offline model, so the ledger and the console have money to show.
    env.setdefault("AGENTLANE_PRICES_FILE", str(DEV_PRICES))
    # Large tool results, answers and messages go to a blob directory beside the database.
    env.setdefault("AGENTLANE_BLOB_STORE", str(data_dir / "blobs"))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _children(
    args: argparse.Namespace, env: Mapping[str, str]
) -> tuple[list[ChildSpec], dict[str, int]]:
    """The edge on ``--port``; runners and projector on free ports for their probes."""
    ports = {"edge": args.port}
    names = [f"runner-{i}" for i in range(args.runners)]
    for name in [*names, "projector"]:
        ports[name] = free_port()

    def spec(name: str, subcommand: str, **extra: str) -> ChildSpec:
        child_env = {**env, "PORT": str(ports[name]), **extra}
        argv = (sys.executable, "-m", "agentlane.cli", subcommand, "--host", args.host)
        return ChildSpec(name=name, argv=argv, env=child_env)

    specs = [spec("edge", "edge")]
    specs += [spec(name, "runner", POD_NAME=name) for name in names]
    specs.append(spec("projector", "projector"))
    return specs, ports


class _Printer:
    """Lines on stdout: ``name | line``, or the line's JSON object plus ``process``."""

    def __init__(self, stream: IO[str], *, json_lines: bool) -> None:
        self._stream = stream
        self._json = json_lines
        self._width = 10

    def __call__(self, name: str, line: str) -> None:
        if self._json:
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if not isinstance(record, dict):
                record = {"message": line}
            record["process"] = name
            text = json.dumps(record, default=str)
        else:
            text = f"{name:<{self._width}} | {line}"
        self._stream.write(text + "\n")
        self._stream.flush()


class _PrinterHandler(logging.Handler):
    def __init__(self, printer: _Printer) -> None:
        super().__init__()
        self._printer = printer

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._printer("dev", self.format(record))
        except Exception:
            self.handleError(record)


async def _supervise(
    args: argparse.Namespace,
    specs: list[ChildSpec],
    ports: Mapping[str, int],
    status: StackStatus,
    data_dir: Path,
    printer: _Printer,
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    supervisor = Supervisor(
        specs,
        sink=printer,
        stop_timeout_s=CHILD_STOP_TIMEOUT_S,
        on_start=lambda name, pid: status.started(data_dir, name, pid, ports[name]),
    )
    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(supervisor.run(stop), name="supervisor")
            group.create_task(_announce(args, ports, status, stop), name="announce")
            await stop.wait()
            logger.info("stopping the dev stack")
    finally:
        # Stopping now: a second Ctrl-C must not cut the cleanups that follow short.
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
            signal.signal(sig, _already_stopping)


async def _all_ready(client: httpx.AsyncClient, probes: list[str]) -> bool:
    for url in probes:
        with contextlib.suppress(httpx.HTTPError):
            if (await client.get(url)).status_code == 200:
                continue
        return False
    return True


async def _announce(
    args: argparse.Namespace,
    ports: Mapping[str, int],
    status: StackStatus,
    stop: asyncio.Event,
) -> None:
    """Once every child answers /readyz (the runners: holding their share of the shards), print
    where everything is, which pid is which and how to try it."""
    base, host = status.http, status.host
    probes = {
        name: f"http://{host}:{port}/readyz" for name, port in ports.items() if name != "edge"
    }
    deadline = time.monotonic() + READY_TIMEOUT_S
    async with httpx.AsyncClient(timeout=2) as client:
        while not stop.is_set():
            if await _all_ready(client, [base + "/readyz", *probes.values()]):
                break
            if time.monotonic() > deadline:
                logger.warning("the stack is not ready after %.0fs; still trying", READY_TIMEOUT_S)
                deadline = float("inf")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.2):
                    await stop.wait()
        else:
            return
    websocket = f"ws://{host}:{args.port}/ws/{{sessionId}}"
    operations = f"{base}/#operations"  # the console's Operations view
    curl = (
        f"curl -s -X POST {base}/agents/session-1/runs -H 'content-type: application/json' "
        "-d '{\"runId\": \"run-1\", \"message\": \"hello\"}'"
    )
    if args.log_json:
        logger.info("agentlane dev is ready", extra={"status": dataclasses.asdict(status),
                                                      "websocket": websocket, "try": curl,
                                                      "operations": operations})
    else:
        lines = [
            "",
            f"agentlane dev is ready ({status.bus} bus)",
            f"  console     {status.console}",
            f"  operations  {operations}   (runners, shards, lag, runs, spend)",
            f"  HTTP API    {base}   (/openapi.json, /metrics)",
            f"  WebSocket   {websocket}",
            f"  database    {status.database}",
            "processes (agentlane dev --status prints them again):",
            *(f"  {line}" for line in status.lines()),
            "try:",
            f"  {curl}",
            f"  curl -s {base}/runs/EXECUTION_ID",
            "Ctrl-C stops everything.",
            "",
        ]
        sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()
