"""What a running ``agentlane dev`` is made of, for ``agentlane dev --status`` and for scripts.

The stack keeps ``<data-dir>/dev.json`` current: its own pid, its URLs, and every child's pid and
probe port, rewritten each time the supervisor (re)starts a child, so the pid of ``runner-0`` is the
one to signal now, never another stack's process found by name. The file is replaced atomically;
whether a stack is alive is the data directory's lock, not the file (a SIGKILLed stack leaves it).
"""

from __future__ import annotations

import fcntl
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from agentlane.errors import ConfigError
from agentlane.files import write_atomically

STATUS_FILE = "dev.json"
LOCK_FILE = "dev.lock"


@dataclass(slots=True)
class Child:
    pid: int
    port: int


@dataclass(slots=True)
class StackStatus:
    """The stack of one data directory: what ``--status`` prints."""

    pid: int
    #: Where the stack's ports are reached from this machine.
    host: str
    http: str
    console: str
    database: str
    bus: str
    children: dict[str, Child] = field(default_factory=dict)

    def started(self, data_dir: Path, name: str, pid: int, port: int) -> None:
        """Record a child's new pid and write the file."""
        self.children[name] = Child(pid, port)
        self.write(data_dir)

    def write(self, data_dir: Path) -> None:
        text = json.dumps(asdict(self), indent=2) + "\n"
        write_atomically(data_dir / STATUS_FILE, text.encode(), mode=0o644)

    def lines(self) -> list[str]:
        """One line per process, ``NAME PID URL``: ``awk '$1 == "runner-0" {print $2}'``."""
        rows = [("dev", self.pid, self.http)]
        for name, child in self.children.items():
            url = self.http if name == "edge" else f"http://127.0.0.1:{child.port}/readyz"
            rows.append((name, child.pid, url))
        return [f"{name:<10} {pid:<8} {url}" for name, pid, url in rows]


def clear(data_dir: Path) -> None:
    (data_dir / STATUS_FILE).unlink(missing_ok=True)


def read(data_dir: Path) -> StackStatus:
    """The status of the stack running on ``data_dir``; ConfigError when none runs."""
    if not _locked(data_dir):
        raise ConfigError(f"no agentlane dev is running with data dir {data_dir}")
    try:
        raw = json.loads((data_dir / STATUS_FILE).read_text())
    except (FileNotFoundError, ValueError):
        raise ConfigError(f"the agentlane dev of {data_dir} is still starting") from None
    children = {name: Child(**child) for name, child in raw.pop("children").items()}
    return StackStatus(**raw, children=children)


def _locked(data_dir: Path) -> bool:
    """Whether a stack holds the data directory's lock (see ``dev._exclusive``)."""
    try:
        lock = (data_dir / LOCK_FILE).open("r")
    except FileNotFoundError:
        return False
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(lock, fcntl.LOCK_UN)
        return False
