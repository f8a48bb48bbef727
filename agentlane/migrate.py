"""Apply ``ddl/`` in order, exactly once, from any number of processes at the same time.

This module owns ``schema_migrations``; the shard rows a migration ensures are the leases'.

Each file ``NNNN_name.sql`` runs in its own transaction and is recorded with its SHA-256; an applied
file whose text changed refuses to migrate (ship a new file instead). A session-level advisory lock
serialises concurrent ``agentlane migrate`` runs, so pods starting together leave one schema.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import psycopg

from agentlane.db import translate_errors
from agentlane.errors import MigrationError
from agentlane.leases import ensure_shards
from agentlane.logs import redact
from agentlane.roles import DEFAULT_APP_ROLE, DEFAULT_AUDIT_ROLE, ensure_roles, grant_logins

logger = logging.getLogger(__name__)

MIGRATION_LOCK_KEY = 0x6167656E746C616E  # "agentlan"
_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def default_ddl_dir() -> Path:
    """The migrations shipped inside the ``agentlane`` package (package data, so a wheel
    carries them as a checkout does)."""
    ddl = Path(str(resources.files("agentlane").joinpath("ddl")))
    if not ddl.is_dir():
        raise MigrationError(f"the agentlane package has no migrations at {ddl}: reinstall it")
    return ddl


def load_migrations(ddl_dir: Path) -> list[Migration]:
    migrations = []
    for path in sorted(ddl_dir.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise MigrationError(f"{path.name}: migration files are named NNNN_name.sql")
        migrations.append(Migration(int(match[1]), match[2], path.read_text()))
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise MigrationError("two migrations share a version number")
    return migrations


def migrate(
    database_url: str,
    *,
    shards: int,
    ddl_dir: Path | None = None,
    app_role: str = DEFAULT_APP_ROLE,
    audit_role: str = DEFAULT_AUDIT_ROLE,
    app_logins: Sequence[str] = (),
    audit_logins: Sequence[str] = (),
) -> list[Migration]:
    """Apply pending migrations, make sure every shard row exists, the app and auditor roles
    have exactly their grants (:mod:`agentlane.roles`) and the given logins are members of
    them; return what was applied."""
    migrations = load_migrations(ddl_dir or default_ddl_dir())
    members = {app_role: tuple(app_logins), audit_role: tuple(audit_logins)}
    try:
        return _migrate(database_url, migrations, shards, (app_role, audit_role), members)
    except psycopg.Error as exc:
        detail = " ".join(redact(str(exc)).split())
        raise MigrationError(f"cannot migrate: {detail}") from exc


def _migrate(
    database_url: str,
    migrations: list[Migration],
    shards: int,
    roles: tuple[str, str],
    members: dict[str, tuple[str, ...]],
) -> list[Migration]:
    applied: list[Migration] = []
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        try:
            conn.execute(
                """
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    version    integer PRIMARY KEY,
                    name       text NOT NULL,
                    checksum   text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now()
                )
                """
            )
            done = {
                row[0]: (row[1], row[2])
                for row in conn.execute("SELECT version, name, checksum FROM schema_migrations")
            }
            for migration in migrations:
                recorded = done.get(migration.version)
                if recorded is not None:
                    if recorded[1] != migration.checksum:
                        raise MigrationError(
                            f"migration {migration.version:04d}_{migration.name} was edited after "
                            "it was applied; add a new migration instead"
                        )
                    continue
                _apply(conn, migration)
                applied.append(migration)
            unknown = set(done) - {m.version for m in migrations}
            if unknown:
                raise MigrationError(
                    f"the database has migrations this code does not know: {sorted(unknown)}"
                )
            ensure_shards(conn, shards)
            ensure_roles(conn, app=roles[0], auditor=roles[1])
            grant_logins(conn, members)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
    return applied


def _apply(conn: psycopg.Connection, migration: Migration) -> None:
    logger.info("applying migration %04d_%s", migration.version, migration.name)
    try:
        with conn.transaction():
            conn.execute(migration.sql.encode())
            conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                (migration.version, migration.name, migration.checksum),
            )
    except psycopg.Error as exc:
        raise MigrationError(
            f"migration {migration.version:04d}_{migration.name} failed: {exc}"
        ) from exc


def pending(database_url: str, ddl_dir: Path | None = None) -> list[Migration]:
    """Migrations not yet applied (empty when the schema is current)."""
    migrations = load_migrations(ddl_dir or default_ddl_dir())
    with translate_errors(), psycopg.connect(database_url, autocommit=True) as conn:
        exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
        if not exists or not exists[0]:
            return migrations
        done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
    return [m for m in migrations if m.version not in done]
