"""The database every table owner is built on: a bounded pool, and driver errors translated once.

:class:`Database` holds the pool; nothing outside it touches the pool. A table's SQL lives in its
owner (the store, the run index, the leases, the read models …), each built on a ``Database``. A
caller that must change several owners' tables atomically opens :meth:`Database.transaction` and
hands the connection to each owner's in-transaction method.

:func:`translate_errors` is the one place a driver error becomes an :class:`AgentlaneError`, by
SQLSTATE (psycopg's error classes), most specific first, with the driver's error as ``__cause__``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson
import psycopg
import psycopg.types.json
from psycopg import errors as pg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from agentlane import pool_metrics
from agentlane.errors import (
    SchemaMissing,
    StoreConflict,
    StoreError,
    StoreReadOnly,
    StoreUnavailable,
)
from agentlane.logs import redact
from agentlane.notifications import Notifier
from agentlane.settings import Settings

logger = logging.getLogger(__name__)

Connection = psycopg.AsyncConnection[Any]

#: SQLSTATEs that mean "the schema this code needs is not there".
_SCHEMA_MISSING = (pg.UndefinedTable, pg.UndefinedColumn, pg.UndefinedFunction,
                   pg.InvalidSchemaName)
#: Failures of the session or the server that a later attempt on a new connection may not meet.
_RETRYABLE = (pg.IdleInTransactionSessionTimeout, pg.TooManyConnections, pg.CannotConnectNow)


#: 19 digits in a row: an integer orjson may not read as ``json.loads`` does (beyond 64 bits it
#: gives a float), or a number or string where the plain parser's speed does not matter.
_LONG_DIGITS = re.compile(rb"\d{19}")


def load_json(text: bytes | str) -> Any:
    """A jsonb value from its text, equal to what ``json.loads`` gives (psycopg's default), read
    by orjson where that is safe (several times faster: every event read decodes its payload).

    jsonb text is plain JSON without duplicate keys, NaN or Infinity. orjson reads integers
    beyond 64 bits as floats, so any text with 19 digits in a row goes to ``json.loads``, as
    does whatever orjson refuses (an escaped lone surrogate, say). Property
    tests (``tests/replay/test_fast_paths.py``, ``tests/core/test_event_json.py``) hold the two
    equal."""
    raw = text.encode() if isinstance(text, str) else text
    if _LONG_DIGITS.search(raw) is None:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)


def dump_json(value: Any) -> str:
    """JSON text of validated event data (finite numbers, text keys) for a jsonb column: written
    by orjson (several times faster: every event written encodes its payload), by ``json.dumps``
    where orjson refuses (integers beyond 64 bits). The two may spell a number differently
    (``1e16`` / ``1e+16``) but jsonb reads the same value from both; the hash chain never sees
    this text (it hashes ``hashchain.canonical_json``). Property test:
    ``tests/core/test_event_json.py``."""
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        return json.dumps(value, ensure_ascii=False)


# Every connection of every component decodes jsonb with it.
psycopg.types.json.set_json_loads(load_json)


def _first_line(exc: BaseException) -> str:
    text = redact(str(exc)).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def translate(exc: psycopg.Error | PoolTimeout) -> StoreError:
    """The store error a driver error means (see the module docstring)."""
    if isinstance(exc, PoolTimeout):
        return StoreUnavailable(f"no database connection available: {_first_line(exc)}")
    state = getattr(exc, "sqlstate", None)
    message = _first_line(exc)
    if isinstance(exc, pg.ReadOnlySqlTransaction):
        return StoreReadOnly(f"the database is read-only: {message}", sqlstate=state)
    if isinstance(exc, (psycopg.OperationalError, *_RETRYABLE)):
        return StoreUnavailable(f"database unavailable: {message}", sqlstate=state)
    if isinstance(exc, pg.UniqueViolation):
        return StoreConflict(f"database conflict: {message}", sqlstate=state)
    if isinstance(exc, _SCHEMA_MISSING):
        return SchemaMissing(
            f"{message} (is the database migrated? run: agentlane migrate)", sqlstate=state
        )
    return StoreError(f"database error: {state}: {message}", sqlstate=state)


@contextlib.contextmanager
def translate_errors() -> Iterator[None]:
    """Turn driver errors raised inside the block into the store's exception tree."""
    try:
        yield
    except (psycopg.Error, PoolTimeout) as exc:
        raise translate(exc) from exc


def with_session_options(database_url: str, **settings: str | int) -> str:
    """``database_url`` with server settings for every session it opens (``-c name=value``)."""
    params = psycopg.conninfo.conninfo_to_dict(database_url)
    added = (f"-c {name}={value}" for name, value in settings.items())
    params["options"] = " ".join([str(params.get("options") or ""), *added]).strip()
    return psycopg.conninfo.make_conninfo(**params)  # type: ignore[arg-type]


#: How long psycopg_pool retries one connection attempt (backoff 1 s, 2 s, …) before giving up on
#: it: short, so a database back from a restart is not met by a retry sleeping for half a minute.
RECONNECT_ATTEMPT_S = 5.0
#: After an attempt gave up, how long until the pool tries again for the clients still waiting.
REGROW_AFTER_S = 1.0


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

    psycopg_pool grows for a waiting client only when the client starts waiting: once the
    attempts it started give up (the database was down), clients already waiting would wait
    out their whole timeout although the database is back (measured: 30 s of stalled runners
    after a restart). So an attempt gives up after :data:`RECONNECT_ATTEMPT_S`, and the pool is
    told to grow again :data:`REGROW_AFTER_S` later (``check``, its public way to do so): one
    attempt at a time, for as long as the outage lasts.
    """
    regrowing: set[asyncio.Task[None]] = set()

    def regrow(pool: AsyncConnectionPool) -> None:
        async def later() -> None:
            await asyncio.sleep(REGROW_AFTER_S)
            with contextlib.suppress(Exception):  # closed meanwhile: nothing left to serve
                await pool.check()

        task = asyncio.get_running_loop().create_task(later(), name=f"pool-regrow:{name}")
        regrowing.add(task)
        task.add_done_callback(regrowing.discard)

    return AsyncConnectionPool(
        database_url,
        min_size=min_size,
        max_size=max_size,
        name=name,
        timeout=timeout_s,
        open=False,
        kwargs={"autocommit": True, "application_name": f"agentlane-{name}"},
        reconnect_timeout=RECONNECT_ATTEMPT_S,
        reconnect_failed=regrow,
    )


@contextlib.asynccontextmanager
async def open_pool(
    database_url: str, *, name: str, min_size: int = 1, max_size: int = 10, wait_s: float = 30.0
) -> AsyncIterator[AsyncConnectionPool]:
    """Open a pool and wait until it has its first connection (or raise StoreUnavailable)."""
    pool = create_pool(database_url, name=name, min_size=min_size, max_size=max_size)
    with translate_errors():
        await pool.open(wait=True, timeout=wait_s)
    pool_metrics.track(pool)
    try:
        yield pool
    finally:
        pool_metrics.untrack(pool)
        await pool.close()


class Database:
    """One pool, lent connection by connection to the table owners built on it."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool
        self._notifier = Notifier(self.connection)

    def notify_after_commit(self, channel: str, payload: str = "") -> None:
        """Wake ``channel``'s listeners, once the caller's transaction has committed: the
        NOTIFY goes out in a transaction of its own (see :class:`Notifier`)."""
        self._notifier.notify(channel, payload)

    async def settle_notifications(self) -> None:
        """Wait until the wake-ups asked for have been sent."""
        await self._notifier.settle()

    @property
    def conninfo(self) -> str:
        """Where the pool connects: for the dedicated LISTEN connections of wake-ups."""
        conninfo = self._pool.conninfo
        if not isinstance(conninfo, str):
            raise TypeError("a Database needs a pool made with a conninfo string")
        return conninfo

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        """An autocommit connection for one or more statements; driver errors translated."""
        with translate_errors():
            async with self._pool.connection() as conn:
                yield conn

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        """A connection inside one transaction: committed when the block ends, rolled back when
        it raises."""
        with translate_errors():
            async with self._pool.connection() as conn, conn.transaction():
                yield conn

    @contextlib.asynccontextmanager
    async def snapshot(self) -> AsyncIterator[Connection]:
        """A connection inside one read-only REPEATABLE READ transaction: reads of several owners'
        tables handed this connection see one moment (and ``now()`` is that moment). Read-only,
        it takes no transaction id, so it never holds back the gap-safe tail's horizon."""
        async with self.transaction() as conn:
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield conn


@contextlib.asynccontextmanager
async def open_database(
    database_url: str, *, name: str, min_size: int = 1, max_size: int = 10, wait_s: float = 30.0
) -> AsyncIterator[Database]:
    """:func:`open_pool` as a :class:`Database`."""
    async with open_pool(
        database_url, name=name, min_size=min_size, max_size=max_size, wait_s=wait_s
    ) as pool:
        database = Database(pool)
        try:
            yield database
        finally:
            await database.settle_notifications()


def database_of(
    settings: Settings, *, name: str, at_least: int = 1
) -> contextlib.AbstractAsyncContextManager[Database]:
    """The database of a component's process: ``DATABASE_URL`` behind a pool of
    ``AGENTLANE_DB_POOL_MIN``..``AGENTLANE_DB_POOL_MAX`` connections (``at_least`` when a
    component needs more), named ``name`` in ``pg_stat_activity``."""
    return open_database(
        settings.require_database_url(),
        name=name,
        min_size=settings.db_pool_min,
        max_size=max(settings.db_pool_max, at_least),
    )


__all__ = [
    "Connection",
    "Database",
    "create_pool",
    "database_of",
    "open_database",
    "open_pool",
    "translate",
    "translate_errors",
    "with_session_options",
]
