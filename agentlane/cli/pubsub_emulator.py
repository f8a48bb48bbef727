"""Google's Pub/Sub emulator as a child process: for the test suite and ``agentlane dev``.

Runs ``gcloud beta emulators pubsub start --host-port=127.0.0.1:PORT --data-dir=DIR`` in its own
process group (gcloud starts a Java child), waits until the port answers, and stops the whole group.
``pause()``/``resume()`` freeze it with SIGSTOP/SIGCONT: clients then see deadline errors, the
failure that leaves ordered publishes stuck when a publisher does not handle it.

    with PubSubEmulator(Path(".agentlane/pubsub")) as emulator:
        os.environ["PUBSUB_EMULATOR_HOST"] = emulator.host_port
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from agentlane.cli.embedded_pg import free_port
from agentlane.errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = ["PubSubEmulator", "emulator_available"]


def emulator_available() -> bool:
    """True when ``gcloud`` and its Pub/Sub emulator component (and Java) are installed."""
    gcloud = shutil.which("gcloud")
    if gcloud is None or shutil.which("java") is None:
        return False
    sdk_root = Path(gcloud).resolve().parent.parent
    candidates = [
        sdk_root / "platform" / "pubsub-emulator",
        Path("/usr/lib/google-cloud-sdk/platform/pubsub-emulator"),
    ]
    return any(path.is_dir() for path in candidates)


class PubSubEmulator:
    """One emulator on 127.0.0.1; ``start``/``stop`` may be called repeatedly (same port)."""

    def __init__(self, data_dir: Path, port: int | None = None, *, start_timeout_s: float = 60.0):
        self.data_dir = Path(data_dir).resolve()
        self.port = port or free_port()
        self.start_timeout_s = start_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def host_port(self) -> str:
        """The value for ``PUBSUB_EMULATOR_HOST``."""
        return f"127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "emulator.log"

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start the emulator and wait until it accepts connections (ConfigError if it cannot)."""
        if self.is_running():
            return
        gcloud = shutil.which("gcloud")
        if gcloud is None or not emulator_available():
            raise ConfigError(
                "the Pub/Sub emulator is not installed "
                "(Debian: google-cloud-cli-pubsub-emulator, needs Java)"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            self._proc = subprocess.Popen(
                [
                    gcloud, "beta", "emulators", "pubsub", "start",
                    f"--host-port={self.host_port}", f"--data-dir={self.data_dir}",
                    "--quiet",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._proc = None
                raise ConfigError(f"the Pub/Sub emulator exited; see {self.log_file}")
            if _answers(self.port):
                logger.info("Pub/Sub emulator listening on %s", self.host_port)
                return
            time.sleep(0.1)
        self.stop()
        raise ConfigError(f"the Pub/Sub emulator did not start in {self.start_timeout_s}s")

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the emulator (its whole process group) and wait until the port is free."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            self._signal_group(proc, signal.SIGCONT)
            self._signal_group(proc, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self._signal_group(proc, signal.SIGKILL)
                proc.wait(timeout=timeout_s)
        # gcloud may exit before its Java child: make sure nothing of the group survives.
        self._signal_group(proc, signal.SIGKILL)
        deadline = time.monotonic() + timeout_s
        while _answers(self.port) and time.monotonic() < deadline:
            time.sleep(0.1)

    def pause(self) -> None:
        """Freeze the emulator (SIGSTOP): connections stay open and calls time out."""
        if self._proc is not None:
            self._signal_group(self._proc, signal.SIGSTOP)

    def resume(self) -> None:
        if self._proc is not None:
            self._signal_group(self._proc, signal.SIGCONT)

    @staticmethod
    def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass

    def __enter__(self) -> PubSubEmulator:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False
