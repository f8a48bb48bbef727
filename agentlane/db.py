"""Connections to the event store: bounded pools, translated errors, reconnect with backoff."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Iterator

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from agentlane.errors import StoreError, StoreUnavailable

logger = logging.getLogger(__name__)


def create_pool(
    database_url: str,
    *,
    name: str,
    min_size: int = 1,
    max_size: int = 10,
    timeout_s: float = 30.0,
) -> AsyncConnectionPool:
    """A pool that is not yet open: use ``async with create_pool(...) as pool``.

    Connections are autocommit; writers open explicit transactions. After a Postgres restart a
    stale connection fails its next use with StoreUnavailable (callers retry with backoff); the
    pool drops broken connections and refills with psycopg_pool's jittered exponential backoff
    rather than a connection storm. No check on every checkout: it would cost a round trip per
    operation.
    """
    return AsyncConnectionPool(
        database_url,
        min_size=min_size,
        max_size=max_size,
        name=name,
        timeout=timeout_s,
        open=False,
        kwargs={"autocommit": True, "application_name": f"agentlane-{name}"},
        reconnect_timeout=0,  # never give up reconnecting: a service outlives a database restart
    )


@contextlib.contextmanager
def translate_errors() -> Iterator[None]:
    """Turn driver errors into the store's exception tree."""
    try:
        yield
    except PoolTimeout as exc:
        raise StoreUnavailable(f"no database connection available: {exc}") from exc
    except psycopg.OperationalError as exc:
        raise StoreUnavailable(f"database unavailable: {exc}") from exc
    except psycopg.Error as exc:
        raise StoreError(f"database error: {exc.sqlstate}: {exc}") from exc


@contextlib.asynccontextmanager
async def open_pool(
    database_url: str, *, name: str, min_size: int = 1, max_size: int = 10, wait_s: float = 30.0
) -> AsyncIterator[AsyncConnectionPool]:
    """Open a pool and wait until it has its first connection (or raise StoreUnavailable)."""
    pool = create_pool(database_url, name=name, min_size=min_size, max_size=max_size)
    with translate_errors():
        await pool.open(wait=True, timeout=wait_s)
    try:
        yield pool
    finally:
        await pool.close()


class Backoff:
    """Jittered exponential backoff ("full jitter"): many clients retrying do not synchronise."""

    def __init__(self, *, initial_s: float = 0.1, maximum_s: float = 10.0) -> None:
        self.initial_s = initial_s
        self.maximum_s = maximum_s
        self.attempt = 0

    def reset(self) -> None:
        self.attempt = 0

    def next_delay(self) -> float:
        ceiling = min(self.maximum_s, self.initial_s * (2**self.attempt))
        self.attempt += 1
        return random.uniform(0, ceiling)

    async def sleep(self) -> None:
        await asyncio.sleep(self.next_delay())
