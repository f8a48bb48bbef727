"""``replay verify`` on several cores: worker processes share one snapshot, each takes a range
of streams.

The parent opens the snapshot and exports it (``pg_export_snapshot``); every worker imports it
(``SET TRANSACTION SNAPSHOT``), so all of them read the same instant, as ``pg_dump --jobs`` does.
Streams are split into contiguous ``(tenant, session)`` ranges at quantiles of the events the
stream heads count (the heads only balance the split: the ranges cover every key whatever the
heads say). Workers
check chains, journals and read-model rows of their streams and send mismatches, progress and
their usage totals back; the parent prints, and then checks what belongs to no stream (orphan
heads and read-model rows, the usage totals).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue as queues
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from agentlane.folds import UsageKey, UsageTotals
from agentlane.replay import anchor as anchors
from agentlane.replay.errors import ReplayError
from agentlane.replay.readmodel_checks import ReadModels, UsageCheck, build_checks, discover
from agentlane.replay.verify import Check, HeadCheck, Mismatch, Summary, scan, verify
from agentlane.store.audit import (
    EventFilter,
    Snapshot,
    count_events,
    estimated_events,
    export_snapshot,
    partitions,
    snapshot,
)

#: Below this many events (the planner's estimate) one process is faster than starting workers.
PARALLEL_FROM = 200_000
_MISMATCH_CHUNK = 200


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """What ``replay verify`` found, and what it could not check."""

    summary: Summary
    notes: list[str]


def auto_jobs(conn: Snapshot) -> int:
    """One process for small stores, one per core (at most 8) from ``PARALLEL_FROM`` events."""
    estimate = estimated_events(conn)
    return 1 if estimate < PARALLEL_FROM else max(1, min(os.cpu_count() or 1, 8))


def run_verify(
    database_url: str,
    where: EventFilter,
    *,
    jobs: int,
    report: Callable[[Mismatch], None],
    advance: Callable[[int], None],
    total: Callable[[int], None] | None = None,
    anchored: Sequence[anchors.Anchor] = (),
) -> VerifyResult:
    """Verify with ``jobs`` processes (0: choose from the table's size); ``total`` is told how
    many events there are (for a progress bar) when given. Each anchor's heads are checked in the
    same snapshot (:func:`agentlane.replay.anchor.check`)."""
    with snapshot(database_url) as conn:
        models = discover(conn, where)
        against_anchors = Summary()
        for anchor in anchored:
            for problem in anchors.check(conn, anchor, where):
                against_anchors.mismatches += 1
                report(problem)
            models.notes.append(
                f"anchor {anchor.source} ({anchor.created_at}, key {anchor.key_id}): "
                f"{len(anchor.heads)} streams checked"
            )
        if jobs == 0:
            jobs = auto_jobs(conn)
        if total is not None:
            total(count_events(conn, where))
        if jobs == 1:
            summary = verify(
                conn, where, checks=models.checks, projected_sql=models.projected_sql,
                projected_params=models.projected_params, report=report, advance=advance,
            )
        else:
            summary = _fan_out(conn, database_url, where, models, jobs, report, advance)
        return VerifyResult(summary.plus(against_anchors), models.notes)


def _fan_out(
    conn: Snapshot,
    database_url: str,
    where: EventFilter,
    models: ReadModels,
    jobs: int,
    report: Callable[[Mismatch], None],
    advance: Callable[[int], None],
) -> Summary:
    snapshot_id = export_snapshot(conn)
    context = multiprocessing.get_context("spawn")
    results: Any = context.Queue()
    workers = [
        context.Process(
            target=_worker,
            args=(database_url, snapshot_id, part, models.tables, models.projected_sql,
                  models.projected_params, results),
            daemon=True,
        )
        for part in partitions(conn, where, jobs)
    ]
    summary = Summary()
    parent_checks: list[Check] = [HeadCheck(conn, where), *models.checks]
    usage = next((c for c in models.checks if isinstance(c, UsageCheck)), None)
    with _running(workers):
        done = 0
        while done < len(workers):
            try:
                message = results.get(timeout=1.0)
            except queues.Empty:
                dead = [w for w in workers if w.exitcode not in (None, 0)]
                if dead:
                    raise ReplayError(f"a verify worker died (exit {dead[0].exitcode})") from None
                continue
            kind = message[0]
            if kind == "mismatches":
                for mismatch in message[1]:
                    report(mismatch)
            elif kind == "progress":
                advance(message[1])
            elif kind == "done":
                done += 1
                summary = summary.plus(message[1])
                if usage is not None:
                    usage.merge(message[2])
            else:
                raise ReplayError(f"a verify worker failed: {message[1]}")
    for check in parent_checks:
        for problem in check.orphans():
            summary.mismatches += 1
            report(problem)
    return summary


@contextlib.contextmanager
def _running(workers: list[Any]) -> Iterator[None]:
    for worker in workers:
        worker.start()
    try:
        yield
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.terminate()
            worker.join()


def _worker(
    database_url: str,
    snapshot_id: str,
    where: EventFilter,
    tables: list[str],
    projected_sql: str,
    projected_params: tuple[Any, ...],
    results: Any,
) -> None:
    """One range of streams, in the parent's snapshot; everything goes back through ``results``."""
    pending: list[Mismatch] = []

    def report(mismatch: Mismatch) -> None:
        pending.append(mismatch)
        if len(pending) >= _MISMATCH_CHUNK:
            results.put(("mismatches", pending.copy()))
            pending.clear()

    try:
        with snapshot(database_url, join=snapshot_id) as conn:
            checks: list[Check] = [HeadCheck(conn, where), *build_checks(conn, where, tables)]
            summary = scan(
                conn, where, checks, projected_sql=projected_sql,
                projected_params=projected_params, report=report,
                advance=lambda n: results.put(("progress", n)),
            )
        usage: list[tuple[UsageKey, UsageTotals]] = []
        for check in checks:
            if isinstance(check, UsageCheck):
                usage = check.totals
        if pending:
            results.put(("mismatches", pending))
        results.put(("done", summary, usage))
    except Exception as exc:
        results.put(("error", str(exc).splitlines()[0] if str(exc) else type(exc).__name__))
