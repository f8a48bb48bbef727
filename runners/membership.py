"""Who the runners are: identity (stable name + incarnation) and their rows in ``cluster_runners``.

A runner's id is ``name/incarnation``: the name is stable (``POD_NAME`` in a StatefulSet), the
incarnation is fresh on every process start, so a pod restarted under the same name never
presents the leases or fencing tokens of its previous life. Liveness is the heartbeat, stamped
with the database's clock; the live, non-draining runners divide the shards among them.

This module owns ``cluster_runners``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from agentlane.db import Connection, Database
from agentlane.leases import SHARDS_CHANNEL


@dataclass(frozen=True, slots=True)
class RunnerIdentity:
    """A runner process: its stable name and this start's incarnation."""

    name: str
    incarnation: str

    @classmethod
    def fresh(cls, name: str) -> RunnerIdentity:
        """A new incarnation of ``name``: call once per process start."""
        return cls(name=name, incarnation=uuid.uuid4().hex[:12])

    @property
    def runner_id(self) -> str:
        return f"{self.name}/{self.incarnation}"


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """What a heartbeat learned: live peers (this runner included unless draining)."""

    live_runners: int
    registered: bool


@dataclass(frozen=True, slots=True)
class RunnerRow:
    """One row of ``cluster_runners`` as an operator sees it (``agentlane shards``)."""

    runner_id: str
    heartbeat_age_s: float
    draining: bool
    #: Since this incarnation registered (a restarted runner is a new, young incarnation).
    up_s: float | None = None


class Membership:
    """The ``cluster_runners`` row of one runner, and what its heartbeat learns of its peers.
    A peer that joins, drains or leaves NOTIFYs ``SHARDS_CHANNEL``: the others rebalance at once."""

    def __init__(
        self,
        db: Database,
        identity: RunnerIdentity,
        *,
        ttl_s: float,
        address: str,
    ) -> None:
        self._db = db
        self._identity = identity
        self._ttl_s = ttl_s
        self._address = address

    async def register(self) -> None:
        """Insert (or refresh) this incarnation's row and tell peers to rebalance."""
        async with self._db.transaction() as conn:
            await conn.execute(
                "INSERT INTO cluster_runners (runner_id, pod_name, incarnation, address) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (runner_id) DO UPDATE "
                "SET heartbeat_at = now(), address = EXCLUDED.address",
                (
                    self._identity.runner_id,
                    self._identity.name,
                    self._identity.incarnation,
                    self._address,
                ),
            )
            await conn.execute("SELECT pg_notify(%s, 'joined')", (SHARDS_CHANNEL,))

    async def heartbeat(self, *, draining: bool) -> Heartbeat:
        """Stamp ``heartbeat_at = now()`` and count the live, non-draining runners.

        A runner is live while its heartbeat is younger than one lease TTL, so a dead runner stops
        counting at about the time its leases expire and the survivors' fair share grows to cover
        them. Rows dead for thirty TTLs are pruned on the way (their leases expired long ago).
        """
        async with self._db.connection() as conn:
            cursor = await conn.execute(
                """
                WITH me AS (
                    UPDATE cluster_runners SET heartbeat_at = now(), draining = %(draining)s
                    WHERE runner_id = %(runner)s RETURNING runner_id
                ), pruned AS (
                    DELETE FROM cluster_runners r
                    WHERE r.heartbeat_at < now() - make_interval(secs => %(ttl)s * 30)
                )
                SELECT (SELECT count(*) FROM me),
                       (SELECT count(*) FROM cluster_runners
                        WHERE runner_id <> %(runner)s AND NOT draining
                          AND heartbeat_at > now() - make_interval(secs => %(ttl)s))
                """,
                {"runner": self._identity.runner_id, "draining": draining, "ttl": self._ttl_s},
            )
            row = await cursor.fetchone()
        assert row is not None
        registered = bool(row[0])
        mine = 0 if draining else 1
        return Heartbeat(live_runners=int(row[1]) + mine, registered=registered)

    async def mark_draining(self) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                "UPDATE cluster_runners SET draining = true, heartbeat_at = now() "
                "WHERE runner_id = %s",
                (self._identity.runner_id,),
            )
            await conn.execute("SELECT pg_notify(%s, 'draining')", (SHARDS_CHANNEL,))

    async def deregister(self) -> None:
        async with self._db.connection() as conn:
            await conn.execute(
                "DELETE FROM cluster_runners WHERE runner_id = %s", (self._identity.runner_id,)
            )


async def runner_rows(db: Database) -> list[RunnerRow]:
    """Every registered runner with its heartbeat age (database time) and whether it drains."""
    async with db.connection() as conn:
        return await read_runner_rows(conn)


async def read_runner_rows(conn: Connection) -> list[RunnerRow]:
    """:func:`runner_rows` on the caller's connection (e.g. inside a ``Database.snapshot()``: the
    command API's operations overview is handed this by its composition root)."""
    rows = await (
        await conn.execute(
            "SELECT runner_id, extract(epoch FROM now() - heartbeat_at)::float8, draining, "
            "extract(epoch FROM now() - started_at)::float8 "
            "FROM cluster_runners ORDER BY runner_id"
        )
    ).fetchall()
    return [RunnerRow(str(row[0]), float(row[1]), bool(row[2]), float(row[3])) for row in rows]
