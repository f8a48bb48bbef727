"""Fenced leases, one implementation for every table of them: shards and the projector.

    LeaseTable    a table of leases and its columns (``SHARD_LEASES``, ``PROJECTOR_LEASE``)
    Lease         a lease held: its :class:`Fence` and the local deadline to stop working by
    Leases        claim, renew, release and check the leases of one holder in one table
    Fence         what a write presents: ``(key, holder, token)``; checked in the write's own
                  transaction (``FOR SHARE``), so a takeover waits for it and a deposed holder's
                  late write is refused (docs/design.md invariant 4)

Every claim increments the lease's token. Every time comes from the database's ``now()``; a lease
also carries a *local* deadline on this process's monotonic clock, computed conservatively from
the database's answer (``expires_at - now()`` measured from when the request was sent), so a
holder stops working when that deadline passes without a renewal, even when it cannot reach the
database to learn that the lease is gone.

This module owns ``cluster_shards``, ``projector_lease`` and ``cluster_config`` (the shard count
the shard rows were made for).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg

from agentlane.db import Connection, Database
from agentlane.errors import ConfigError, FencedOut, SchemaMissing

#: NOTIFY channel for lease changes (released shards): holders rebalance at once.
SHARDS_CHANNEL = "agentlane_shards"


@dataclass(frozen=True, slots=True)
class LeaseTable:
    """A table of fenced leases: its name and the names of its columns (constants, never input)."""

    name: str
    key: str
    holder: str
    token: str
    expires: str
    #: Whether a release NOTIFYs ``SHARDS_CHANNEL`` (peers claim released shards at once).
    notify_release: bool = False

    def fence_sql(self) -> str:
        """The statement that holds a fence in a write's transaction: one row while the fence is
        current, none when it is stale or expired. Parameters ``fence_key``, ``fence_holder`` and
        ``fence_token`` (:meth:`Fence.params`)."""
        return (
            f"SELECT 1 FROM {self.name} WHERE {self.key} = %(fence_key)s "
            f"AND {self.holder} = %(fence_holder)s AND {self.token} = %(fence_token)s "
            f"AND {self.expires} > now() FOR SHARE"
        )

    def held_sql(self) -> str:
        """:meth:`fence_sql` for many fences in one statement: the keys (as text) of those of the
        fences that are current, each row held FOR SHARE. Parameters ``fence_keys``,
        ``fence_holders`` and ``fence_tokens`` (:func:`fences_params`)."""
        return (
            f"SELECT l.{self.key}::text AS key FROM {self.name} l "
            "JOIN unnest(%(fence_keys)s::text[], %(fence_holders)s::text[], "
            "%(fence_tokens)s::bigint[]) AS f(key, holder, token) "
            f"ON l.{self.key}::text = f.key AND l.{self.holder} = f.holder "
            f"AND l.{self.token} = f.token WHERE l.{self.expires} > now() FOR SHARE OF l"
        )


SHARD_LEASES = LeaseTable(
    "cluster_shards", key="shard_id", holder="runner_id", token="lease_token",
    expires="lease_expires_at", notify_release=True,
)
PROJECTOR_LEASE = LeaseTable(
    "projector_lease", key="name", holder="holder", token="token", expires="expires_at"
)


@dataclass(frozen=True, slots=True)
class Fence:
    """The lease a write must still hold: ``(key, holder, token)`` in ``table``."""

    key: int | str
    holder: str
    token: int
    table: LeaseTable = field(default=SHARD_LEASES)

    @property
    def shard_id(self) -> int:
        """The shard of a shard lease's fence."""
        if self.table is not SHARD_LEASES:
            raise TypeError(f"a fence of {self.table.name} has no shard")
        return int(self.key)

    def params(self) -> dict[str, Any]:
        """The parameters of :meth:`LeaseTable.fence_sql`."""
        return {"fence_key": self.key, "fence_holder": self.holder, "fence_token": self.token}

    def refused(self) -> FencedOut:
        """The error of a write this fence no longer allows."""
        return FencedOut(
            table=self.table.name, key=self.key, holder=self.holder, token=self.token
        )


@dataclass(frozen=True, slots=True)
class Lease:
    """A lease this process holds, with its fence and when it must stop working under it."""

    fence: Fence
    expires_at: datetime
    deadline: float  # time.monotonic() after which the lease may be gone

    @property
    def key(self) -> int | str:
        return self.fence.key

    @property
    def shard_id(self) -> int:
        return self.fence.shard_id

    @property
    def token(self) -> int:
        return self.fence.token


def fences_params(fences: Iterable[Fence]) -> dict[str, Any]:
    """The parameters of :meth:`LeaseTable.held_sql` for ``fences`` (of one table)."""
    listed = list(fences)
    return {
        "fence_keys": [str(f.key) for f in listed],
        "fence_holders": [f.holder for f in listed],
        "fence_tokens": [f.token for f in listed],
    }


async def check_fence(conn: Connection, fence: Fence) -> None:
    """Inside a write's transaction: raise FencedOut unless ``fence`` is still current. The row is
    held FOR SHARE until the transaction ends, so the lease cannot move meanwhile."""
    cursor = await conn.execute(fence.table.fence_sql(), fence.params())
    if await cursor.fetchone() is None:
        raise fence.refused()


class Leases:
    """The leases ``holder`` takes in one :class:`LeaseTable`, each for ``ttl_s`` seconds."""

    def __init__(self, db: Database, table: LeaseTable, *, holder: str, ttl_s: float) -> None:
        self._db = db
        self.table = table
        self.holder = holder
        self.ttl_s = ttl_s
        t = table
        self._claim = f"""
            WITH free AS (
                SELECT {t.key} FROM {t.name}
                WHERE ({t.holder} IS NULL OR {t.expires} IS NULL OR {t.expires} <= now())
                  AND (%(keys)s::text[] IS NULL OR {t.key}::text = ANY(%(keys)s::text[]))
                  AND {t.key}::text <> ALL(%(avoid)s::text[])
                ORDER BY {t.key}
                LIMIT %(count)s
                FOR UPDATE SKIP LOCKED
            )
            UPDATE {t.name} l
            SET {t.holder} = %(holder)s, {t.token} = l.{t.token} + 1,
                {t.expires} = now() + make_interval(secs => %(ttl)s),
                acquired_at = now(), renewed_at = now()
            FROM free WHERE l.{t.key} = free.{t.key}
            RETURNING l.{t.key}, l.{t.token}, l.{t.expires},
                      extract(epoch FROM l.{t.expires} - now())::float8
        """
        self._renew = f"""
            UPDATE {t.name} l
            SET {t.expires} = now() + make_interval(secs => %(ttl)s), renewed_at = now()
            FROM unnest(%(keys)s::text[], %(tokens)s::bigint[]) AS h(key, token)
            WHERE l.{t.key}::text = h.key AND l.{t.token} = h.token
              AND l.{t.holder} = %(holder)s AND l.{t.expires} > now()
            RETURNING l.{t.key}, l.{t.token}, l.{t.expires},
                      extract(epoch FROM l.{t.expires} - now())::float8
        """
        self._release = f"""
            UPDATE {t.name} l SET {t.holder} = NULL, {t.expires} = NULL
            FROM unnest(%(keys)s::text[], %(tokens)s::bigint[]) AS h(key, token)
            WHERE l.{t.key}::text = h.key AND l.{t.token} = h.token AND l.{t.holder} = %(holder)s
            RETURNING l.{t.key}
        """

    async def claim(
        self, count: int, *, keys: Sequence[int | str] | None = None, avoid: Sequence[int] = ()
    ) -> list[Lease]:
        """Take up to ``count`` free or expired leases (only among ``keys`` when given, never
        those in ``avoid``), ordered by key."""
        if count <= 0:
            return []
        sent = time.monotonic()
        params = {
            "keys": None if keys is None else [str(k) for k in keys],
            "avoid": [str(k) for k in avoid],
            "count": count,
            "holder": self.holder,
            "ttl": self.ttl_s,
        }
        async with self._db.transaction() as conn:
            rows = await (await conn.execute(self._claim, params)).fetchall()
        return sorted((self._lease(row, sent) for row in rows), key=lambda lease: lease.key)

    async def renew(self, leases: Iterable[Lease]) -> dict[int | str, Lease]:
        """Extend the leases that are still ours (same token, not expired), by key; the rest are
        gone."""
        held = list(leases)
        if not held:
            return {}
        sent = time.monotonic()
        params = {
            "ttl": self.ttl_s,
            "keys": [str(lease.key) for lease in held],
            "tokens": [lease.token for lease in held],
            "holder": self.holder,
        }
        async with self._db.connection() as conn:
            rows = await (await conn.execute(self._renew, params)).fetchall()
        return {row[0]: self._lease(row, sent) for row in rows}

    async def release(self, leases: Iterable[Lease]) -> list[int | str]:
        """Give leases back (only those still ours with that token), so another holder takes them
        at once rather than after the TTL; returns the keys released."""
        held = list(leases)
        if not held:
            return []
        params = {
            "keys": [str(lease.key) for lease in held],
            "tokens": [lease.token for lease in held],
            "holder": self.holder,
        }
        async with self._db.transaction() as conn:
            released = sorted(row[0] for row in await (
                await conn.execute(self._release, params)
            ).fetchall())
            if released and self.table.notify_release:
                await conn.execute("SELECT pg_notify(%s, 'released')", (SHARDS_CHANNEL,))
        return released

    def _lease(self, row: Sequence[Any], sent: float) -> Lease:
        key, token, expires_at, remaining_s = row
        return Lease(
            fence=Fence(key, self.holder, int(token), self.table),
            expires_at=expires_at,
            deadline=sent + float(remaining_s),
        )


@dataclass(frozen=True, slots=True)
class ShardRow:
    """One row of ``cluster_shards`` as an operator sees it (``agentlane shards``)."""

    shard_id: int
    runner_id: str | None
    lease_token: int
    expires_in_s: float | None
    #: Since when its holder has held it (the last claim: a shard that moved has a young one).
    held_for_s: float | None = None


async def shard_rows(db: Database) -> list[ShardRow]:
    """Every shard with its holder, token and time to expiry (database time)."""
    async with db.connection() as conn:
        return await read_shard_rows(conn)


async def read_shard_rows(conn: Connection) -> list[ShardRow]:
    """:func:`shard_rows` on the caller's connection (e.g. inside a ``Database.snapshot()``)."""
    rows = await (
        await conn.execute(
            "SELECT shard_id, runner_id, lease_token, "
            "extract(epoch FROM lease_expires_at - now())::float8, "
            "extract(epoch FROM now() - acquired_at)::float8 "
            "FROM cluster_shards ORDER BY shard_id"
        )
    ).fetchall()
    return [ShardRow(*row) for row in rows]


# --- the shard count ----------------------------------------------------------------------------


def _refuse_another_count(recorded: int, configured: int) -> None:
    if recorded != configured:
        raise ConfigError(
            f"AGENTLANE_SHARDS={configured} but this database was created with {recorded} shards; "
            "the shard count is fixed per database"
        )


async def check_recorded_shard_count(db: Database, configured: int) -> None:
    """For a process that routes by shard but holds no lease (commands, gateway): refuse
    ``AGENTLANE_SHARDS`` other than the count this database was created with. A database not yet
    migrated has no count to disagree with; its readiness says so elsewhere."""
    try:
        async with db.connection() as conn:
            row = await (
                await conn.execute("SELECT value FROM cluster_config WHERE key = 'shards'")
            ).fetchone()
    except SchemaMissing:
        return
    if row is not None:
        _refuse_another_count(int(row[0]), configured)


async def verify_shard_count(db: Database, configured: int) -> None:
    """Refuse to run when ``AGENTLANE_SHARDS`` disagrees with the database: the count it was
    created with (``cluster_config``) and its shard rows. ConfigError says what to do."""
    async with db.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT (SELECT value FROM cluster_config WHERE key = 'shards'), "
                "(SELECT count(*) FROM cluster_shards)"
            )
        ).fetchone()
    assert row is not None
    if row[0] is None:
        raise ConfigError("the database has no shard count yet: run `agentlane migrate`")
    _refuse_another_count(int(row[0]), configured)
    if int(row[1]) != configured:
        raise ConfigError(
            f"cluster_shards has {row[1]} rows but AGENTLANE_SHARDS={configured}: "
            "run `agentlane migrate`"
        )


def ensure_shards(conn: psycopg.Connection[Any], shards: int) -> None:
    """At migration (synchronous): record the shard count once and create its rows; a different
    count refuses to go on."""
    with conn.transaction():
        conn.execute(
            "INSERT INTO cluster_config (key, value) VALUES ('shards', %s) ON CONFLICT DO NOTHING",
            (str(shards),),
        )
        row = conn.execute("SELECT value FROM cluster_config WHERE key = 'shards'").fetchone()
        assert row is not None
        _refuse_another_count(int(row[0]), shards)
        conn.execute(
            "INSERT INTO cluster_shards (shard_id) SELECT generate_series(0, %s - 1) "
            "ON CONFLICT DO NOTHING",
            (shards,),
        )


__all__ = [
    "PROJECTOR_LEASE",
    "SHARDS_CHANNEL",
    "SHARD_LEASES",
    "Fence",
    "Lease",
    "LeaseTable",
    "Leases",
    "ShardRow",
    "check_fence",
    "fences_params",
    "check_recorded_shard_count",
    "read_shard_rows",
    "ensure_shards",
    "shard_rows",
    "verify_shard_count",
]
