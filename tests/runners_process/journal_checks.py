"""What every crash test checks in the journal and the lease table (plain SQL, sync)."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from tests.fixtures.processes import Proc


def query(url: str, sql: str, params: tuple[Any, ...] | None = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()  # type: ignore[arg-type]


def scalar(url: str, sql: str, params: tuple[Any, ...] | None = None) -> Any:
    return query(url, sql, params)[0][0]


def wait_for(
    predicate: Callable[[], bool],
    timeout_s: float,
    what: str,
    procs: list[Proc],
    *,
    poll_s: float = 0.1,
) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {p.name}\n{p.log()[-3000:]}" for p in procs)
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}\n{logs}")
        time.sleep(poll_s)


def owners(url: str) -> dict[int, tuple[str | None, int, bool]]:
    """shard -> (runner_id, lease_token, lease live)."""
    rows = query(
        url,
        "SELECT shard_id, runner_id, lease_token, coalesce(lease_expires_at > now(), false) "
        "FROM cluster_shards ORDER BY shard_id",
    )
    return {row[0]: (row[1], row[2], row[3]) for row in rows}


def shards_of(url: str, pod_name: str) -> dict[int, int]:
    """Live shards of the runner named ``pod_name`` (any incarnation) -> token."""
    return {
        shard: token
        for shard, (runner, token, live) in owners(url).items()
        if live and runner is not None and runner.split("/")[0] == pod_name
    }


def completed_runs(url: str) -> int:
    return int(scalar(url, "SELECT count(*) FROM agent_events WHERE event_type = 'Completed'"))


def check_journal(url: str, runs: int) -> None:
    """Every run ended Completed once; no step completed twice; each session's runs executed one
    at a time in accepted order (RunStarted of run k+1 after the terminal event of run k)."""
    assert scalar(url, "SELECT count(*) FROM run_index") == 0, "runs left unfinished"
    terminal = query(
        url,
        "SELECT execution_id, event_type, count(*) FROM agent_events "
        "WHERE event_type IN ('Completed', 'Failed', 'Cancelled') GROUP BY 1, 2",
    )
    assert len(terminal) == runs, f"{len(terminal)} terminal events for {runs} runs"
    assert all(t[1] == "Completed" and t[2] == 1 for t in terminal), terminal[:5]
    doubled = query(
        url,
        "SELECT execution_id, payload->>'step', count(*) FROM agent_events "
        "WHERE event_type IN ('StepCompleted', 'ToolResult', 'TimerFired') "
        "GROUP BY 1, 2 HAVING count(*) > 1",
    )
    assert doubled == [], f"steps with two completions: {doubled[:5]}"
    started = query(
        url,
        "SELECT execution_id, count(*) FROM agent_events WHERE event_type = 'RunStarted' "
        "GROUP BY 1 HAVING count(*) <> 1",
    )
    assert started == [], f"runs started more than once: {started[:5]}"
    rows = query(
        url,
        "SELECT session_id, execution_id, "
        "min(seq) FILTER (WHERE event_type = 'RunAccepted'), "
        "min(seq) FILTER (WHERE event_type = 'RunStarted'), "
        "max(seq) FILTER (WHERE event_type IN ('Completed', 'Failed', 'Cancelled')) "
        "FROM agent_events WHERE execution_id IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 3",
    )
    by_session: dict[str, list[tuple[Any, ...]]] = {}
    for row in rows:
        by_session.setdefault(row[0], []).append(row)
    for session, session_runs in by_session.items():
        for before, after in itertools.pairwise(session_runs):
            assert after[3] > before[4], (
                f"session {session}: run {after[1]} started (seq {after[3]}) before run "
                f"{before[1]} ended (seq {before[4]})"
            )


def log_lines(proc: Proc) -> list[dict[str, Any]]:
    lines = []
    for line in proc.log().splitlines():
        if line.startswith("{"):
            try:
                lines.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return lines


def messages(proc: Proc, needle: str) -> list[str]:
    return [line["message"] for line in log_lines(proc) if needle in str(line.get("message", ""))]


def metric(proc: Proc, name: str) -> float:
    """Sum of a metric's samples on the process's /metrics."""
    import httpx

    total = 0.0
    for line in httpx.get(proc.base_url + "/metrics", timeout=5).text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def dump_logs(procs: list[Proc], directory: Path) -> str:
    return "\n".join(f"--- {p.name} ({directory})\n{p.log()[-2000:]}" for p in procs)
