"""After the faults: let the stack settle, then check every invariant over the whole history.

- every accepted run ended exactly once, and no run is stuck;
- no step completed twice;
- per-session seq contiguous and hash chains intact, journals valid, read models equal to a re-fold
  (``agentlane replay verify``, the auditors' own tool);
- every WebSocket client saw each event of its session once, in order, across its reconnects;
- every completed run reads clean: its transcript (the rule every client uses) ends with its
  answer, once, whatever runner crashes cut its streams short.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import psycopg

from agentlane.events import TERMINAL_TYPES
from agentlane.transcript import transcript_of
from tests.soak.faults import FaultLog
from tests.soak.stack import SHARDS, Stack
from tests.soak.traffic import Accepted, Watcher

COMPLETIONS = ("StepCompleted", "ToolResult", "TimerFired")


@dataclass
class Verdict:
    """Each invariant's name and, when it failed, what broke it."""

    results: dict[str, list[str]] = field(default_factory=dict)
    figures: dict[str, str] = field(default_factory=dict)

    def record(self, name: str, problems: Sequence[str]) -> None:
        self.results[name] = list(problems)

    @property
    def ok(self) -> bool:
        return not any(self.results.values())


async def settle(
    stack: Stack, watchers: Sequence[Watcher], verdict: Verdict, *, timeout_s: float
) -> None:
    """Wait (bounded) for the runs to end, the projector to catch up and the sockets to see
    everything; whatever does not is a violation."""
    deadline = time.monotonic() + timeout_s
    stuck = await _until(deadline, lambda: _unfinished(stack.database_url))
    verdict.record("no run stuck", [f"unfinished after the drain: {ex}" for ex in stuck[:10]])
    lagging = await _until(deadline, lambda: _projector_lag(stack.database_url))
    verdict.record("projector caught up", lagging)
    behind = await _until(
        time.monotonic() + 60, lambda: _watchers_behind(stack.database_url, watchers)
    )
    verdict.record("sockets caught up", behind[:10])


_STORE_ERROR = re.compile(r"Store(Error|Unavailable|ReadOnly|Conflict)|database unavailable")


def check_history(stack: Stack, accepted: Sequence[Accepted], verdict: Verdict) -> None:
    with psycopg.connect(stack.database_url) as conn:
        terminal = conn.execute(
            "SELECT execution_id, event_type FROM agent_events WHERE event_type = ANY(%s)",
            (sorted(TERMINAL_TYPES),),
        ).fetchall()
        twice = conn.execute(
            "SELECT execution_id, payload ->> 'step', count(*) FROM agent_events "
            "WHERE event_type = ANY(%s) GROUP BY 1, 2 HAVING count(*) > 1",
            (list(COMPLETIONS),),
        ).fetchall()
        failures = conn.execute(
            "SELECT payload ->> 'reason', count(*) FROM agent_events WHERE event_type = 'Failed' "
            "GROUP BY 1 ORDER BY 2 DESC"
        ).fetchall()
        totals = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE event_type = 'Token'), "
            "count(DISTINCT (tenant_id, session_id)) FROM agent_events"
        ).fetchone()
    ends = Counter(str(execution) for execution, _ in terminal)
    outcomes = Counter(str(kind) for _, kind in terminal)
    verdict.record(
        "every accepted run ended exactly once",
        [f"{run.execution_id} ({run.run_id}) ended {ends.get(run.execution_id, 0)} times"
         for run in accepted if ends.get(run.execution_id, 0) != 1][:10],
    )
    verdict.record("no step completed twice", [f"{ex} step {step}: {n}" for ex, step, n in twice])
    assert totals is not None
    verdict.figures["runs accepted"] = str(len(accepted))
    verdict.figures["runs ended"] = ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()))
    # Only the model's injected faults may fail a run: database trouble (a restart, a failover)
    # must delay runs, never decide them.
    verdict.record(
        "no run failed because of the database",
        [f"{count}x {reason}" for reason, count in failures if _STORE_ERROR.search(str(reason))],
    )
    for reason, count in failures[:5]:
        verdict.figures.setdefault("failed because", "")
        verdict.figures["failed because"] += f"{count}x {str(reason)[:150]}; "
    verdict.figures["events"] = f"{totals[0]} ({totals[1]} tokens, {totals[2]} sessions)"


def check_transcripts(stack: Stack, verdict: Verdict) -> None:
    """A completed run's last streamed step shows exactly its answer: the text of attempts cut
    short by a crash was dropped, never left in front of the retry's."""
    with psycopg.connect(stack.database_url) as conn:
        rows = conn.execute(
            "SELECT e.execution_id, e.event_type, e.payload FROM agent_events e "
            "WHERE e.execution_id IN (SELECT execution_id FROM agent_events "
            "WHERE event_type = 'Completed') ORDER BY e.execution_id, e.seq"
        ).fetchall()
    runs: dict[str, list[dict[str, object]]] = {}
    for execution, kind, data in rows:
        runs.setdefault(str(execution), []).append({"type": kind, "data": data})
    problems, crashed = [], 0
    for execution, events in runs.items():
        texts = transcript_of(events).step_texts()
        answer = next(e["data"]["answer"] for e in events if e["type"] == "Completed")
        crashed += any(e["type"] == "StepFailed" and e["data"].get("abandoned") for e in events)
        shown = texts[max(texts)] if texts else ""
        if answer and shown != answer:
            problems.append(f"{execution}: shows {shown[:80]!r}, answered {answer[:80]!r}")
    verdict.record("every completed run reads clean", problems[:10])
    verdict.figures["transcripts"] = (
        f"{len(runs)} completed runs read clean; {crashed} had an attempt abandoned mid-stream"
    )


def check_replay_verify(stack: Stack, verdict: Verdict) -> None:
    """The auditors' tool over the whole store: chains, seq, journals, read models."""
    result = subprocess.run(
        [sys.executable, "-m", "agentlane.cli", "replay", "verify"],
        env={
            "PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"),
            "DATABASE_URL": stack.database_url, "AGENTLANE_SHARDS": str(SHARDS),
            "AGENTLANE_LOG_LEVEL": "WARNING",
        },
        capture_output=True, text=True, timeout=600, check=False,
    )
    problems = [] if result.returncode == 0 else (result.stdout + result.stderr).splitlines()[-15:]
    verdict.record("replay verify (chains, seq, journals, read models)", problems)


def check_watchers(stack: Stack, watchers: Sequence[Watcher], verdict: Verdict) -> None:
    problems = []
    with psycopg.connect(stack.database_url) as conn:
        for watcher in watchers:
            stored = conn.execute(
                "SELECT event_id, seq FROM agent_events WHERE tenant_id = %s AND session_id = %s "
                "ORDER BY seq",
                (watcher.tenant, watcher.session),
            ).fetchall()
            if watcher.received != [tuple(row) for row in stored]:
                problems.append(_diff(watcher, [(int(a), int(b)) for a, b in stored]))
    verdict.record("every socket saw each event once, in order", problems[:10])
    connects = sum(w.connects for w in watchers)
    errors = sum(len(w.errors) for w in watchers)
    verdict.figures["sockets"] = (
        f"{len(watchers)} clients, {connects} connections, {errors} error frames"
    )


def _diff(watcher: Watcher, stored: list[tuple[int, int]]) -> str:
    got = watcher.received
    ids = [event_id for event_id, _ in got]
    duplicates = len(ids) - len(set(ids))
    missing = len({e for e, _ in stored} - set(ids))
    first = next(
        (i for i, (a, b) in enumerate(zip(got, stored, strict=False)) if a != b),
        min(len(got), len(stored)),
    )
    return (
        f"{watcher.tenant}/{watcher.session} via {watcher.gateway.name}: {len(got)} received, "
        f"{len(stored)} stored, {duplicates} duplicates, {missing} missing, first difference at "
        f"#{first}: got {got[first:first + 3]}, stored {stored[first:first + 3]}"
    )


async def _until(deadline: float, problems: object) -> list[str]:
    """Poll ``problems()`` (a blocking query) until it returns nothing or the deadline passes."""
    assert callable(problems)
    while True:
        found: list[str] = await asyncio.to_thread(problems)
        if not found or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.5)


def _unfinished(database_url: str) -> list[str]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT a.execution_id, a.tenant_id || '/' || a.session_id, "
            "(SELECT e.event_type FROM agent_events e WHERE e.execution_id = a.execution_id "
            " ORDER BY e.seq DESC LIMIT 1) "
            "FROM agent_events a WHERE a.event_type = 'RunAccepted' AND NOT EXISTS ("
            "SELECT 1 FROM agent_events t WHERE t.execution_id = a.execution_id "
            "AND t.event_type = ANY(%s))",
            (sorted(TERMINAL_TYPES),),
        ).fetchall()
    return [f"{ex} in {where}, last event {last}" for ex, where, last in rows]


def _projector_lag(database_url: str) -> list[str]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT c.name, (SELECT count(*) FROM agent_events e "
            "WHERE (e.tx_id, e.event_id) > (c.tx_id::text::xid8, c.event_id)) "
            "FROM projector_checkpoints c"
        ).fetchall()
    lagging = [f"{name}: {behind} events behind" for name, behind in rows if behind]
    return lagging or ([] if len(rows) >= 2 else ["the projector has not checkpointed yet"])


def _watchers_behind(database_url: str, watchers: Sequence[Watcher]) -> list[str]:
    with psycopg.connect(database_url) as conn:
        heads = {
            (t, s): int(last)
            for t, s, last in conn.execute(
                "SELECT tenant_id, session_id, max(event_id) FROM agent_events "
                "GROUP BY tenant_id, session_id"
            ).fetchall()
        }
    return [
        f"{w.tenant}/{w.session} via {w.gateway.name}: at {w.last_event_id}, "
        f"head {heads.get((w.tenant, w.session), 0)}"
        for w in watchers
        if w.last_event_id < heads.get((w.tenant, w.session), 0)
    ]


def slowest_probes(stack: Stack, faults: FaultLog, count: int = 3) -> list[str]:
    """Where the time of the slowest recoveries went: acceptance, start, first token, end,
    each in seconds after the probe began."""
    probes = sorted(
        ((kind, p) for kind, ps in faults.probes.items() for p in ps if p.execution_id),
        key=lambda item: -(item[1].seconds if item[1].seconds is not None else 1e9),
    )[:count]
    lines = []
    with psycopg.connect(stack.database_url) as conn:
        for kind, probe in probes:
            marks = conn.execute(
                "SELECT event_type, min(extract(epoch FROM created_at)) FROM agent_events "
                "WHERE execution_id = %s GROUP BY event_type ORDER BY 2",
                (probe.execution_id,),
            ).fetchall()
            steps = ", ".join(
                f"{kind_} +{float(at) - probe.started_at:.1f}s" for kind_, at in marks
                if kind_ in ("RunAccepted", "RunStarted", "Token", "StepFailed", *TERMINAL_TYPES)
            )
            took = f"{probe.seconds:.1f}s" if probe.seconds is not None else "never"
            lines.append(f"slow probe after {kind} ({took}): {steps}")
    return lines
