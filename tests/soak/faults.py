"""The soak's fault schedule: seeded, so a failing soak is replayed by its seed.

Every few seconds one fault, chosen by weight: SIGKILL a runner (and start it again), SIGSTOP a
runner (sometimes past its lease TTL, so it is fenced out), SIGKILL the projector, restart
PostgreSQL with ``-m immediate``, freeze the Pub/Sub emulator, cut a third of the sockets. After
each one a probe run measures how long until the stack completes new work again.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from tests.soak.stack import LEASE_TTL_S, Stack
from tests.soak.traffic import Commands, Probe, Watcher, probe

WEIGHTS = {
    "kill_runner": 3,
    "pause_runner": 2,
    "kill_projector": 1,
    "restart_postgres": 1,
    "freeze_pubsub": 1,
    "cut_sockets": 2,
}


@dataclass
class FaultLog:
    injected: dict[str, int] = field(default_factory=dict)
    #: The probe run started when each fault ended, by fault kind.
    probes: dict[str, list[Probe]] = field(default_factory=dict)
    timeline: list[str] = field(default_factory=list)

    def recovery_s(self, kind: str | None = None) -> list[float]:
        """Seconds from the end of a fault until its probe run completed."""
        return [
            probe.seconds for k, probes in self.probes.items() if kind in (None, k)
            for probe in probes if probe.seconds is not None
        ]

    def unrecovered(self) -> dict[str, int]:
        """Probes that did not complete in time, per fault kind."""
        counts = {k: sum(p.seconds is None for p in probes) for k, probes in self.probes.items()}
        return {k: n for k, n in counts.items() if n}


async def inject(
    stack: Stack, watchers: list[Watcher], commands: Commands, *, rng: random.Random,
    kinds: list[str], every_s: tuple[float, float], stop: asyncio.Event, log: FaultLog,
    started: float,
) -> None:
    """Inject faults of ``kinds`` until ``stop``; each one's probe runs alongside the next
    fault's wait."""
    probes: set[asyncio.Task[None]] = set()
    number = 0
    weights = [WEIGHTS[kind] for kind in kinds]
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), rng.uniform(*every_s))
        if stop.is_set():
            break
        kind = rng.choices(kinds, weights)[0]
        detail = await _one(kind, stack, watchers, rng)
        number += 1
        log.injected[kind] = log.injected.get(kind, 0) + 1
        log.timeline.append(f"{time.monotonic() - started:7.1f}s {kind} {detail}")
        task = asyncio.create_task(_measure(commands, number, kind, log))
        probes.add(task)
        task.add_done_callback(probes.discard)
    await asyncio.gather(*probes)


async def _one(kind: str, stack: Stack, watchers: list[Watcher], rng: random.Random) -> str:
    runner = rng.choice(stack.runners)
    actions: dict[str, Callable[[], Awaitable[str]]] = {
        "kill_runner": lambda: _timed(stack.kill(runner, rng.uniform(0.2, 2.0)), runner),
        "pause_runner": lambda: _timed(
            stack.pause(runner, rng.uniform(1.0, 2 * LEASE_TTL_S)), runner
        ),
        "kill_projector": lambda: _timed(stack.kill("projector", rng.uniform(0.2, 2.0)), ""),
        "restart_postgres": lambda: _timed(stack.restart_postgres(), ""),
        "freeze_pubsub": lambda: _timed(stack.freeze_pubsub(rng.uniform(2.0, 8.0)), ""),
        "cut_sockets": lambda: _cut(watchers, rng),
    }
    return await actions[kind]()


async def _timed(fault: Awaitable[None], what: str) -> str:
    started = time.monotonic()
    await fault
    return f"{what} ({time.monotonic() - started:.1f}s)".strip()


async def _cut(watchers: list[Watcher], rng: random.Random) -> str:
    chosen = rng.sample(watchers, max(1, len(watchers) // 3))
    for watcher in chosen:
        watcher.cut()
    return f"{len(chosen)} sockets"


async def _measure(commands: Commands, number: int, kind: str, log: FaultLog) -> None:
    log.probes.setdefault(kind, []).append(await probe(commands, number))
