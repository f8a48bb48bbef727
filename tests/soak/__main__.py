"""``python -m tests.soak --seconds 600 --seed 7``: the chaos soak (see ``tests/soak``).

Prints one screen (faults injected, runs, events, recovery times, each invariant) and exits 1 on
any violation, naming the seed that replays the schedule; the data and logs are kept then.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import shutil
import signal
import statistics
import sys
import time

from tests.soak.checks import (
    Verdict,
    check_history,
    check_replay_verify,
    check_transcripts,
    check_watchers,
    settle,
    slowest_probes,
)
from tests.soak.faults import WEIGHTS, FaultLog, inject
from tests.soak.stack import ModelFaults, Stack, running_stack
from tests.soak.traffic import Commands, Watcher, open_loop

TENANTS = ("acme", "globex", "initech")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.soak", description=__doc__)
    parser.add_argument("--seconds", type=float, default=600, help="load and faults (600)")
    parser.add_argument("--seed", type=int, default=None, help="fault and load schedule (random)")
    parser.add_argument("--runners", type=int, default=3, help="runner processes (3)")
    parser.add_argument("--rate", type=float, default=3.0, help="runs started per second (3)")
    parser.add_argument("--sessions", type=int, default=4, help="sessions per tenant (4)")
    parser.add_argument(
        "--fault-every", type=float, nargs=2, default=(4.0, 10.0), metavar=("MIN", "MAX"),
        help="seconds between faults, uniform (4 10)",
    )
    parser.add_argument(
        "--faults", nargs="+", choices=sorted(WEIGHTS), default=sorted(WEIGHTS), metavar="KIND",
        help=f"only these kinds of fault ({', '.join(sorted(WEIGHTS))})",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the data and logs even when the soak passes"
    )
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 10**6)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    print(f"soak: seed {seed}, {args.seconds:.0f}s, {args.runners} runners, {args.rate}/s",
          flush=True)
    # SIGTERM unwinds like Ctrl-C, so the stack's context managers stop every child process.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    verdict, faults, root, slowest = asyncio.run(_soak(args, seed))
    _report(args, seed, verdict, faults, root, slowest)
    return 0 if verdict.ok else 1


async def _soak(
    args: argparse.Namespace, seed: int
) -> tuple[Verdict, FaultLog, str, list[str]]:
    verdict, faults = Verdict(), FaultLog()
    with running_stack(
        runners=args.runners, rng=random.Random(seed + 1), model_faults=ModelFaults()
    ) as stack:
        try:
            await _drive(stack, args, seed, verdict, faults)
            slowest = slowest_probes(stack, faults)
        except BaseException:
            print(f"soak: seed {seed} broke off; data and logs kept in {stack.root}", flush=True)
            raise
    if verdict.ok and not args.keep:
        shutil.rmtree(stack.root, ignore_errors=True)
    elif verdict.ok:
        print(f"soak: data and logs kept in {stack.root}", flush=True)
    return verdict, faults, str(stack.root), slowest


async def _drive(
    stack: Stack, args: argparse.Namespace, seed: int, verdict: Verdict, faults: FaultLog
) -> None:
    sessions = [(t, f"s{i}") for t in TENANTS for i in range(args.sessions)]
    watchers = [Watcher(gw, t, s) for t, s in sessions for gw in stack.gateways()]
    commands = Commands(stack.procs["edge"])
    stop_load, stop_watch = asyncio.Event(), asyncio.Event()
    started = time.monotonic()
    watching = [asyncio.create_task(w.run(stop_watch)) for w in watchers]
    load = asyncio.create_task(
        open_loop(commands, sessions, rate=args.rate, rng=random.Random(seed + 2), stop=stop_load)
    )
    # A random stream of its own: the same seed gives the same faults, whatever the load did.
    chaos = asyncio.create_task(
        inject(stack, watchers, commands, rng=random.Random(seed), kinds=args.faults,
               every_s=tuple(args.fault_every), stop=stop_load, log=faults, started=started)
    )
    died: list[str] = []
    while time.monotonic() - started < args.seconds:
        await asyncio.sleep(1)
        died += stack.restart_dead()
    stop_load.set()
    await asyncio.gather(load, chaos)
    verdict.record("every fault recovered", [
        f"{count} probe run(s) after {kind} never completed"
        for kind, count in sorted(faults.unrecovered().items())
    ])
    died += stack.restart_dead()
    verdict.record("no component exited on its own", [f"{name} exited" for name in died])
    verdict.figures["load"] = f"{time.monotonic() - started:.0f}s, {commands.retries} retries"
    await settle(stack, watchers, verdict, timeout_s=120)
    stop_watch.set()
    for watcher in watchers:
        watcher.cut()
    await asyncio.gather(*watching)
    await commands.close()
    check_history(stack, commands.accepted, verdict)
    check_watchers(stack, watchers, verdict)
    check_transcripts(stack, verdict)
    await asyncio.to_thread(check_replay_verify, stack, verdict)


def _report(
    args: argparse.Namespace, seed: int, verdict: Verdict, faults: FaultLog, root: str,
    slowest: list[str],
) -> None:
    lines = [f"soak {'PASSED' if verdict.ok else 'FAILED'}: seed {seed}, {args.seconds:.0f}s"]
    lines += [f"  {name:<16} {value}" for name, value in verdict.figures.items()]
    injected = ", ".join(f"{k} {v}" for k, v in sorted(faults.injected.items())) or "none"
    lines.append(f"  {'faults':<16} {sum(faults.injected.values())}: {injected}")
    lines.append(
        f"  {'recovery':<16} {_percentiles(faults.recovery_s())} (fault end -> a new run ended)"
    )
    for kind in sorted(faults.probes):
        lines.append(f"    {kind:<18} {_percentiles(faults.recovery_s(kind))}")
    lines += [f"  {line}" for line in slowest]
    lines.append("  invariants")
    for name, problems in verdict.results.items():
        lines.append(f"    {'ok  ' if not problems else 'FAIL'} {name}")
        lines += [f"         {problem}" for problem in problems[:5]]
    if not verdict.ok or args.keep:
        lines.append(
            f"  replay this schedule: python -m tests.soak --seconds {args.seconds:.0f} "
            f"--seed {seed} --runners {args.runners} --rate {args.rate} "
            f"--sessions {args.sessions} --fault-every {args.fault_every[0]} "
            f"{args.fault_every[1]} --faults {' '.join(args.faults)}; "
            f"data and logs kept in {root}"
        )
        lines.append("  fault timeline:")
        lines += [f"    {entry}" for entry in faults.timeline]
    print("\n".join(lines), flush=True)


def _percentiles(values: list[float]) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (
        f"p50 {statistics.median(ordered):.2f}s, p99 {p99:.2f}s, max {ordered[-1]:.2f}s "
        f"(n={len(values)})"
    )


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
