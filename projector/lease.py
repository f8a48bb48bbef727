"""The projector's leader lease: one active projector, fenced like a shard's lease.

A claim takes a free or expired lease and increments ``token``; every batch transaction re-checks
``(holder, token, expires_at > now())`` with FOR SHARE, so a takeover (an UPDATE of that row) waits
for an in-flight batch and a deposed leader's late batch is rejected. Time is the database's.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from psycopg.rows import tuple_row
from psycopg_pool import AsyncConnectionPool

from agentlane.db import translate_errors
from projector.errors import LostLeadership

logger = logging.getLogger(__name__)

LEASE_NAME = "projector"

_CLAIM = """
UPDATE projector_lease
SET holder = %(holder)s, token = token + 1, expires_at = now() + %(ttl)s * interval '1 second',
    acquired_at = now(), renewed_at = now()
WHERE name = %(name)s AND (holder IS NULL OR expires_at IS NULL OR expires_at <= now())
RETURNING token
"""

_RENEW = """
UPDATE projector_lease
SET expires_at = now() + %(ttl)s * interval '1 second', renewed_at = now()
WHERE name = %(name)s AND holder = %(holder)s AND token = %(token)s AND expires_at > now()
RETURNING token
"""

_RELEASE = """
UPDATE projector_lease SET holder = NULL, expires_at = NULL
WHERE name = %(name)s AND holder = %(holder)s AND token = %(token)s
RETURNING token
"""

_FENCE = """
SELECT 1 FROM projector_lease
WHERE name = %(name)s AND holder = %(holder)s AND token = %(token)s AND expires_at > now()
FOR SHARE
"""


class LeaderLease:
    """Claim, renew, check and release the lease for ``holder`` (unique per process)."""

    def __init__(
        self, pool: AsyncConnectionPool, *, holder: str, ttl_s: float, name: str = LEASE_NAME
    ) -> None:
        self.pool = pool
        self.holder = holder
        self.ttl_s = ttl_s
        self.name = name
        self.token: int | None = None

    def _params(self) -> dict[str, Any]:
        return {"name": self.name, "holder": self.holder, "ttl": self.ttl_s, "token": self.token}

    async def _one(self, query: str) -> tuple[Any, ...] | None:
        async with self.pool.connection() as conn:
            with translate_errors():
                cursor = conn.cursor(row_factory=tuple_row)
                await cursor.execute(query, self._params())
                return await cursor.fetchone()

    async def try_claim(self) -> int | None:
        """The new fencing token if the lease was free or expired, else None."""
        row = await self._one(_CLAIM)
        self.token = int(row[0]) if row else None
        if self.token is not None:
            logger.info("projector lease claimed (token %s)", self.token)
        return self.token

    async def renew(self) -> None:
        """Extend the lease; LostLeadership if it expired or moved."""
        if self.token is None or await self._one(_RENEW) is None:
            raise LostLeadership(self.holder, self.token or 0)

    async def release(self) -> None:
        """Hand the lease back so a standby takes over at once rather than after the TTL."""
        if self.token is not None:
            await self._one(_RELEASE)
            logger.info("projector lease released (token %s)", self.token)
            self.token = None

    async def check(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Inside a batch's transaction: LostLeadership unless this lease is still current."""
        cursor = conn.cursor(row_factory=tuple_row)
        await cursor.execute(_FENCE, self._params())
        if await cursor.fetchone() is None:
            raise LostLeadership(self.holder, self.token or 0)
