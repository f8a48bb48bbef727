"""``GET /ops/overview``: the cluster as an operator sees it, from one database snapshot.

Every part is read through its table's owner on one read-only REPEATABLE READ connection
(:meth:`agentlane.db.Database.snapshot`), so runners, leases, due work, checkpoints and usage are
of the same moment, and every read is bounded: the runners and shards are as many as the fleet
and the shard count (beyond 1024 shards only the notable ones are listed), the ended runs are
counted over the newest events only, the usage rows are capped. The runners' table belongs to the
runner component, which this one may not import: its composition root hands in the owner's read
(``runners.membership.read_runner_rows``), as ``agentlane shards`` uses it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

from agentlane.db import Connection, Database
from agentlane.errors import SchemaMissing
from agentlane.events import format_timestamp
from agentlane.leases import ShardRow, read_shard_rows
from agentlane.readmodels import ReadModels
from agentlane.readmodels.tables import READ_MODELS_CHECKPOINT
from agentlane.run_index import RunIndex, ShardProgress
from agentlane.store import Checkpoints, HorizonWatch, recent_ends

#: Days of usage ``GET /ops/overview`` returns by default, and the most it may ask for.
DEFAULT_DAYS, MAX_DAYS = 14, 90
#: The most usage rows (tenant, model, day) one answer carries.
MAX_USAGE_ROWS = 1000
#: Beyond this many shards only the notable ones (due work, no live lease) are listed.
MAX_SHARD_ROWS = 1024
#: A checkpoint's lag is counted up to this many events (as the projector's metric is).
LAG_CAP = 100_000
#: Ended runs are counted over this window, looking at this many of its newest events at most.
ENDED_WINDOW_S, ENDED_SCAN_CAP = 60.0, 20_000


class RunnerRow(Protocol):
    """A row of ``cluster_runners`` as its owner reads it (``runners.membership.RunnerRow``)."""

    @property
    def runner_id(self) -> str: ...
    @property
    def heartbeat_age_s(self) -> float: ...
    @property
    def draining(self) -> bool: ...
    @property
    def up_s(self) -> float | None: ...


#: The owner's read of the registered runners, on the caller's connection.
RunnerRows = Callable[[Connection], Awaitable[Sequence[RunnerRow]]]


class OpsReader:
    """Answers ``GET /ops/overview``. ``checkpoints``: the projector checkpoints that move in
    this deployment (``publish`` only on the pubsub bus)."""

    def __init__(
        self,
        db: Database,
        *,
        runners: RunnerRows | None,
        checkpoints: Sequence[str] = (READ_MODELS_CHECKPOINT,),
    ) -> None:
        self._db = db
        self._runners = runners
        self._checkpoints = tuple(checkpoints)
        self._horizon = HorizonWatch(db)

    async def overview(self, *, days: int = DEFAULT_DAYS) -> dict[str, Any]:
        async with self._db.snapshot() as conn:
            now = await _now(conn)
            runners = list(await self._runners(conn)) if self._runners is not None else []
            shards = await read_shard_rows(conn)
            progress = await RunIndex.progress_in(conn, [s.shard_id for s in shards], busy=[])
            positions = [
                await Checkpoints.position_in(conn, name, lag_cap=LAG_CAP)
                for name in self._checkpoints
            ]
            horizon_s = await self._horizon.age_s(conn)
            active = await RunIndex.status_counts(conn)
            ended = await recent_ends(conn, window_s=ENDED_WINDOW_S, scan_cap=ENDED_SCAN_CAP)
            since = now.astimezone(UTC).date() - timedelta(days=days - 1)
            usage = await _usage(conn, since)
        held = {s.shard_id: s for s in shards if _live(s)}
        return {
            "at": format_timestamp(now),
            "runners": [_runner(r, [s for s in held.values() if s.runner_id == r.runner_id])
                        for r in runners],
            "shards": _shards(shards, held, progress),
            "projector": {
                "checkpoints": [
                    {
                        "name": p.name,
                        "lagEvents": p.lag_events,
                        "lagEventsCapped": p.lag_events >= LAG_CAP,
                        "lagS": round(p.lag_s, 3),
                        "updatedAgeS": round((now - p.updated_at).total_seconds(), 3),
                    }
                    for p in positions
                ],
                "horizonAgeS": round(horizon_s, 3),
            },
            "runs": {
                "active": active,
                "ended": {**ended.counts, "windowS": round(ended.window_s, 3),
                          "sampled": ended.sampled},
            },
            "usage": usage,
        }


async def _now(conn: Connection) -> datetime:
    row = await (await conn.execute("SELECT now()")).fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


async def _usage(conn: Connection, since: date) -> dict[str, Any] | None:
    try:
        async with conn.transaction():  # a savepoint: the snapshot survives a missing table
            rows = await ReadModels.usage_since(conn, since, limit=MAX_USAGE_ROWS)
    except SchemaMissing:
        return None  # `replay rebuild` is swapping the read models in
    return {
        "since": since.isoformat(),
        "days": [
            {"day": key.day.isoformat(), "tenant": key.tenant_id, "model": key.model,
             **totals.to_json()}
            for key, totals in rows[:MAX_USAGE_ROWS]
        ],
        "truncated": len(rows) > MAX_USAGE_ROWS,
    }


def _live(shard: ShardRow) -> bool:
    return shard.runner_id is not None and (shard.expires_in_s or 0) > 0


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _runner(row: RunnerRow, held: list[ShardRow]) -> dict[str, Any]:
    expiries = [s.expires_in_s for s in held if s.expires_in_s is not None]
    return {
        "runnerId": row.runner_id,
        "heartbeatAgeS": round(row.heartbeat_age_s, 3),
        "upS": _seconds(row.up_s),
        "draining": row.draining,
        "shards": sorted(s.shard_id for s in held),
        "leaseExpiresInS": _seconds(min(expiries)) if expiries else None,
    }


def _shards(
    shards: list[ShardRow], held: dict[int, ShardRow], progress: Mapping[int, ShardProgress]
) -> dict[str, Any]:
    rows = []
    for shard in shards:
        work = progress.get(shard.shard_id, ShardProgress(None, None))
        rows.append({
            "shard": shard.shard_id,
            "runnerId": shard.runner_id if shard.shard_id in held else None,
            "leaseToken": shard.lease_token,
            "expiresInS": _seconds(shard.expires_in_s),
            "heldForS": _seconds(shard.held_for_s),
            "dueRuns": work.due_runs,
            "oldestDueAgeS": _seconds(work.oldest_due_age_s),
            "nextWakeInS": _seconds(work.next_wake_in_s),
        })
    listed = "all"
    if len(rows) > MAX_SHARD_ROWS:
        listed = "notable"
        rows = [r for r in rows if r["dueRuns"] or r["runnerId"] is None][:MAX_SHARD_ROWS]
    return {"count": len(shards), "held": len(held), "listed": listed, "rows": rows}
