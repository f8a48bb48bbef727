"""Keep a set of child processes running; stop them all, and everything they started, on demand.

Each child runs in its own session (so its whole process group can be signalled, and a Ctrl-C in the
terminal reaches only the supervisor, which decides the stop order). A child that exits while the
supervisor runs is logged and restarted after an exponential backoff that resets once the child has
stayed up for a while. Stopping sends SIGTERM to each child's process group, waits
``stop_timeout_s``, then SIGKILLs the group, so neither a hung child nor a grandchild outlives the
supervisor. On Linux a child also gets SIGTERM if the supervisor itself dies (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

logger = logging.getLogger(__name__)

#: One line of a child's output: (child name, line without its newline).
LineSink = Callable[[str, str], None]

_PR_SET_PDEATHSIG = 1
_MAX_LINE = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """What to run: a name for its log lines, the full argv, and its whole environment."""

    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """Delay before restart ``n`` is ``min(maximum_s, initial_s * 2**n)``; ``n`` resets to 0 once a
    child has stayed up ``healthy_after_s``."""

    initial_s: float = 0.5
    maximum_s: float = 10.0
    healthy_after_s: float = 10.0

    def delay(self, attempt: int) -> float:
        return min(self.maximum_s, self.initial_s * 2.0**attempt)


def _die_with_parent() -> None:
    """Runs in the child between fork and exec: SIGTERM me when the supervisor dies."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Supervisor:
    """Runs ``specs`` until :meth:`run`'s ``stop`` event is set.

    Args:
        specs: the children, started in this order.
        sink: receives every output line of every child (stdout and stderr, merged).
        stop_timeout_s: SIGTERM-to-SIGKILL delay when stopping a child.
        policy: restart backoff.
        on_start: called with a child's name and pid each time it is started.
    """

    def __init__(
        self,
        specs: Sequence[ChildSpec],
        *,
        sink: LineSink,
        stop_timeout_s: float = 5.0,
        policy: RestartPolicy | None = None,
        on_start: Callable[[str, int], None] | None = None,
    ) -> None:
        names = [spec.name for spec in specs]
        if len(set(names)) != len(names):
            raise ValueError("child names must be unique")
        self._specs = list(specs)
        self._sink = sink
        self._stop_timeout_s = stop_timeout_s
        self._policy = policy or RestartPolicy()
        self._on_start = on_start
        self._procs: dict[str, asyncio.subprocess.Process] = {}
        self._starts: dict[str, int] = dict.fromkeys(names, 0)

    def pids(self) -> dict[str, int]:
        """Pid of every child running right now, by name."""
        return {name: p.pid for name, p in self._procs.items() if p.returncode is None}

    def starts(self, name: str) -> int:
        """How many times ``name`` was started (1 + restarts)."""
        return self._starts[name]

    async def run(self, stop: asyncio.Event) -> None:
        """Start every child, restart those that exit, and stop them all once ``stop`` is set."""
        async with asyncio.TaskGroup() as group:
            for spec in self._specs:
                group.create_task(self._keep_running(spec, stop), name=f"supervise-{spec.name}")

    async def _keep_running(self, spec: ChildSpec, stop: asyncio.Event) -> None:
        attempt = 0
        while not stop.is_set():
            started = time.monotonic()
            code = await self._run_once(spec, stop)
            if stop.is_set():
                return
            if time.monotonic() - started >= self._policy.healthy_after_s:
                attempt = 0
            delay = self._policy.delay(attempt)
            attempt += 1
            logger.warning(
                "%s exited with code %s; restarting in %.1fs", spec.name, code, delay,
                extra={"child": spec.name, "exit_code": code, "restart_in_s": delay},
            )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await stop.wait()

    async def _run_once(self, spec: ChildSpec, stop: asyncio.Event) -> int | None:
        try:
            proc = await asyncio.create_subprocess_exec(
                *spec.argv,
                env=dict(spec.env),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
                limit=_MAX_LINE,
            )
        except OSError as exc:
            logger.error("cannot start %s: %s", spec.name, exc, extra={"child": spec.name})
            return None
        self._procs[spec.name] = proc
        self._starts[spec.name] += 1
        logger.info("started %s (pid %d)", spec.name, proc.pid, extra={"child": spec.name})
        if self._on_start is not None:
            self._on_start(spec.name, proc.pid)
        assert proc.stdout is not None
        pump = asyncio.create_task(self._pump(spec.name, proc.stdout), name=f"pump-{spec.name}")
        exited = asyncio.create_task(proc.wait(), name=f"wait-{spec.name}")
        stopping = asyncio.create_task(stop.wait(), name=f"stop-{spec.name}")
        try:
            await asyncio.wait({exited, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            if proc.returncode is None:
                await self._terminate(spec.name, proc)
            # Whatever the leader left behind in its group goes too.
            _signal_group(proc.pid, signal.SIGKILL)
            await exited
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2):
                    await pump
            pump.cancel()
        return proc.returncode

    async def _terminate(self, name: str, proc: asyncio.subprocess.Process) -> None:
        _signal_group(proc.pid, signal.SIGTERM)
        started = time.monotonic()
        try:
            async with asyncio.timeout(self._stop_timeout_s):
                await proc.wait()
            logger.info(
                "%s stopped (exit code %s) in %.1fs", name, proc.returncode,
                time.monotonic() - started, extra={"child": name},
            )
        except TimeoutError:
            logger.warning(
                "%s did not stop within %.1fs; killing it", name, self._stop_timeout_s,
                extra={"child": name},
            )
            _signal_group(proc.pid, signal.SIGKILL)
            await proc.wait()

    async def _pump(self, name: str, stream: asyncio.StreamReader) -> None:
        while True:
            try:
                raw = await stream.readline()
            except ValueError:
                # A line longer than the limit: pass on what fits rather than stall the child.
                raw = await stream.read(_MAX_LINE)
            if not raw:
                return
            self._sink(name, raw.decode(errors="replace").rstrip("\r\n"))


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
