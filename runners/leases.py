"""Shard leases on ``cluster_shards``: claim, renew, release. Every time comes from ``now()``.

Each claim increments the shard's ``lease_token``: the token plus the runner id is the fence every
workflow append presents, so a runner that lost a lease (paused, partitioned, slow) cannot write.

A lease also carries a *local* deadline on this process's monotonic clock, computed
conservatively from the database's answer (``expires_at - now()`` measured from the moment the
request was sent): the runner stops a shard's work when that deadline passes without a renewal,
even if it cannot reach the database to learn that the lease is gone.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from psycopg.rows import tuple_row
from psycopg_pool import AsyncConnectionPool

from agentlane.db import translate_errors
from agentlane.errors import ConfigError
from agentlane.migrate import check_shard_count
from agentlane.records import Fence
from runners.registry import SHARDS_CHANNEL


@dataclass(frozen=True, slots=True)
class Lease:
    """A shard this runner holds, with its fencing token and when it must stop working on it."""

    fence: Fence
    expires_at: datetime
    deadline: float  # time.monotonic() after which the lease may be gone

    @property
    def shard_id(self) -> int:
        return self.fence.shard_id

    @property
    def token(self) -> int:
        return self.fence.lease_token


@dataclass(frozen=True, slots=True)
class ShardRow:
    """One row of ``cluster_shards`` joined with its runner, for ``agentlane shards``."""

    shard_id: int
    runner_id: str | None
    lease_token: int
    expires_in_s: float | None
    heartbeat_age_s: float | None
    draining: bool


class LeaseTable:
    """The SQL of shard leases for one runner id."""

    def __init__(self, pool: AsyncConnectionPool, *, runner_id: str, ttl_s: float) -> None:
        self._pool = pool
        self._runner_id = runner_id
        self._ttl_s = ttl_s

    async def check_shard_count(self, configured: int) -> None:
        """Refuse to run when ``AGENTLANE_SHARDS`` disagrees with the database's shard count."""
        with translate_errors():
            async with self._pool.connection() as conn:
                cursor = conn.cursor(row_factory=tuple_row)
                await cursor.execute(
                    "SELECT (SELECT value FROM cluster_config WHERE key = 'shards'), "
                    "(SELECT count(*) FROM cluster_shards)"
                )
                row = await cursor.fetchone()
        assert row is not None
        if row[0] is None:
            raise ConfigError("the database has no shard count yet: run `agentlane migrate`")
        check_shard_count(int(row[0]), configured)
        if int(row[1]) != configured:
            raise ConfigError(
                f"cluster_shards has {row[1]} rows but AGENTLANE_SHARDS={configured}: "
                "run `agentlane migrate`"
            )

    async def claim(self, count: int, *, avoid: Sequence[int] = ()) -> list[Lease]:
        """Take up to ``count`` free or expired shards (never those in ``avoid``)."""
        if count <= 0:
            return []
        sent = time.monotonic()
        with translate_errors():
            async with self._pool.connection() as conn, conn.transaction():
                cursor = conn.cursor(row_factory=tuple_row)
                await cursor.execute(
                    """
                    WITH free AS (
                        SELECT shard_id FROM cluster_shards
                        WHERE (runner_id IS NULL OR lease_expires_at IS NULL
                               OR lease_expires_at <= now())
                          AND shard_id <> ALL(%(avoid)s::int[])
                        ORDER BY shard_id
                        LIMIT %(count)s
                        FOR UPDATE SKIP LOCKED
                    )
                    UPDATE cluster_shards s
                    SET runner_id = %(runner)s,
                        lease_token = s.lease_token + 1,
                        lease_expires_at = now() + make_interval(secs => %(ttl)s),
                        acquired_at = now(),
                        renewed_at = now()
                    FROM free WHERE s.shard_id = free.shard_id
                    RETURNING s.shard_id, s.lease_token, s.lease_expires_at,
                              extract(epoch FROM s.lease_expires_at - now())::float8
                    """,
                    {
                        "avoid": list(avoid),
                        "count": count,
                        "runner": self._runner_id,
                        "ttl": self._ttl_s,
                    },
                )
                rows = await cursor.fetchall()
        return sorted((self._lease(row, sent) for row in rows), key=lambda lease: lease.shard_id)

    async def renew(self, leases: Iterable[Lease]) -> dict[int, Lease]:
        """Extend the leases that are still ours (same token, not expired); the rest are gone."""
        held = list(leases)
        if not held:
            return {}
        sent = time.monotonic()
        with translate_errors():
            async with self._pool.connection() as conn:
                cursor = conn.cursor(row_factory=tuple_row)
                await cursor.execute(
                    """
                    UPDATE cluster_shards s
                    SET lease_expires_at = now() + make_interval(secs => %(ttl)s),
                        renewed_at = now()
                    FROM unnest(%(shards)s::int[], %(tokens)s::bigint[]) AS h(shard_id, token)
                    WHERE s.shard_id = h.shard_id AND s.lease_token = h.token
                      AND s.runner_id = %(runner)s AND s.lease_expires_at > now()
                    RETURNING s.shard_id, s.lease_token, s.lease_expires_at,
                              extract(epoch FROM s.lease_expires_at - now())::float8
                    """,
                    {
                        "ttl": self._ttl_s,
                        "shards": [lease.shard_id for lease in held],
                        "tokens": [lease.token for lease in held],
                        "runner": self._runner_id,
                    },
                )
                rows = await cursor.fetchall()
        return {row[0]: self._lease(row, sent) for row in rows}

    async def release(self, leases: Iterable[Lease]) -> list[int]:
        """Give shards back (only if still ours with that token); wake peers to claim them."""
        held = list(leases)
        if not held:
            return []
        with translate_errors():
            async with self._pool.connection() as conn, conn.transaction():
                cursor = conn.cursor(row_factory=tuple_row)
                await cursor.execute(
                    """
                    UPDATE cluster_shards s SET runner_id = NULL, lease_expires_at = NULL
                    FROM unnest(%(shards)s::int[], %(tokens)s::bigint[]) AS h(shard_id, token)
                    WHERE s.shard_id = h.shard_id AND s.lease_token = h.token
                      AND s.runner_id = %(runner)s
                    RETURNING s.shard_id
                    """,
                    {
                        "shards": [lease.shard_id for lease in held],
                        "tokens": [lease.token for lease in held],
                        "runner": self._runner_id,
                    },
                )
                released = sorted(row[0] for row in await cursor.fetchall())
                if released:
                    await conn.execute("SELECT pg_notify(%s, 'released')", (SHARDS_CHANNEL,))
        return released

    def _lease(self, row: tuple[int, int, datetime, float], sent: float) -> Lease:
        shard_id, token, expires_at, remaining_s = row
        return Lease(
            fence=Fence(shard_id=shard_id, runner_id=self._runner_id, lease_token=token),
            expires_at=expires_at,
            deadline=sent + remaining_s,
        )


async def shard_table(pool: AsyncConnectionPool) -> list[ShardRow]:
    """Every shard with its owner, token, time to expiry and the owner's heartbeat age."""
    with translate_errors():
        async with pool.connection() as conn:
            cursor = conn.cursor(row_factory=tuple_row)
            await cursor.execute(
                """
                SELECT s.shard_id, s.runner_id, s.lease_token,
                       extract(epoch FROM s.lease_expires_at - now())::float8,
                       extract(epoch FROM now() - r.heartbeat_at)::float8,
                       coalesce(r.draining, false)
                FROM cluster_shards s
                LEFT JOIN cluster_runners r ON r.runner_id = s.runner_id
                ORDER BY s.shard_id
                """
            )
            rows = await cursor.fetchall()
    return [ShardRow(*row) for row in rows]
