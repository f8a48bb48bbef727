"""The dev stack's supervisor with trivial children: restart on crash, tagged output, and a stop
that leaves no process behind (the child, a child that ignores SIGTERM, or a grandchild)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

from agentlane.cli.supervisor import ChildSpec, RestartPolicy, Supervisor

FAST = RestartPolicy(initial_s=0.05, maximum_s=0.2, healthy_after_s=60)


def _python(name: str, code: str) -> ChildSpec:
    return ChildSpec(name=name, argv=(sys.executable, "-c", code), env=dict(os.environ))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purpose: it only waits for its parent to reap it.
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state != "Z"


async def _until(predicate, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


def test_restart_delay_grows_and_is_capped() -> None:
    policy = RestartPolicy(initial_s=0.5, maximum_s=3.0)
    assert [policy.delay(n) for n in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]


async def test_a_crashing_child_is_restarted_and_its_lines_are_tagged() -> None:
    lines: list[tuple[str, str]] = []
    crasher = _python("crasher", "import sys; print('boom', flush=True); sys.exit(3)")
    steady = _python("steady", "import time; print('up', flush=True); time.sleep(60)")
    supervisor = Supervisor(
        [crasher, steady], sink=lambda n, line: lines.append((n, line)), policy=FAST
    )
    stop = asyncio.Event()
    task = asyncio.create_task(supervisor.run(stop))
    await _until(lambda: supervisor.starts("crasher") >= 3)
    steady_pid = supervisor.pids()["steady"]
    stop.set()
    await asyncio.wait_for(task, 15)
    assert supervisor.starts("steady") == 1, "a healthy child is never restarted"
    assert ("steady", "up") in lines
    assert lines.count(("crasher", "boom")) >= 2
    assert not _alive(steady_pid)


async def test_stop_kills_a_child_that_ignores_sigterm_and_its_grandchildren(
    tmp_path: Path,
) -> None:
    pid_file = tmp_path / "grandchild.pid"
    code = (
        "import signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(g.pid))\n"
        "print('ready', flush=True)\n"
        "time.sleep(120)\n"
    )
    lines: list[tuple[str, str]] = []
    supervisor = Supervisor(
        [_python("stubborn", code)],
        sink=lambda n, line: lines.append((n, line)),
        stop_timeout_s=0.5,
        policy=FAST,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(supervisor.run(stop))
    await _until(lambda: ("stubborn", "ready") in lines)
    child_pid = supervisor.pids()["stubborn"]
    grandchild_pid = int(pid_file.read_text())
    started = time.monotonic()
    stop.set()
    await asyncio.wait_for(task, 15)
    assert time.monotonic() - started < 10
    assert not _alive(child_pid)
    await _until(lambda: not _alive(grandchild_pid), timeout_s=5)
    assert supervisor.starts("stubborn") == 1


def test_children_die_with_a_killed_supervisor(tmp_path: Path) -> None:
    """SIGKILL leaves no chance to clean up: the children still get SIGTERM (PDEATHSIG)."""
    pid_file = tmp_path / "child.pid"
    child_code = (
        f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(120)"
    )
    script = tmp_path / "supervise.py"
    script.write_text(
        "import asyncio, os, sys\n"
        "from agentlane.cli.supervisor import ChildSpec, Supervisor\n"
        f"spec = ChildSpec('sleeper', (sys.executable, '-c', {child_code!r}), dict(os.environ))\n"
        "asyncio.run(Supervisor([spec], sink=lambda n, line: None).run(asyncio.Event()))\n"
    )
    supervisor = subprocess.Popen([sys.executable, str(script)], start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not pid_file.exists() or not pid_file.read_text():
            assert time.monotonic() < deadline and supervisor.poll() is None
            time.sleep(0.05)
        child = int(pid_file.read_text())
        supervisor.kill()
        supervisor.wait(10)
        deadline = time.monotonic() + 10
        while _alive(child):
            assert time.monotonic() < deadline, "the child outlived its supervisor"
            time.sleep(0.05)
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
