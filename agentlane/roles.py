"""The database roles: who may do what to the tables (``agentlane migrate`` keeps them so).

- The **owner** is whoever runs the migrations: it owns every table, so only it can alter one or
  disable a trigger. Nothing else should log in as it.
- The **app role** (``AGENTLANE_APP_ROLE``, default ``agentlane_app``) is what the components run
  as: it reads and writes the tables it works on, and on ``agent_events`` it may only read and
  insert. It owns nothing, so it cannot disable the append-only trigger and rewrite history.
- The **auditor role** (``AGENTLANE_AUDIT_ROLE``, default ``agentlane_auditor``) reads everything
  and writes nothing: what ``agentlane replay verify`` and ``export`` need.

Both are ``NOLOGIN``: a login (a workload's Cloud SQL IAM user, or a developer) is granted one of
them. Tables the owner creates later (a read-model rebuild swaps tables) get the same grants by
default privileges, so no rebuild leaves the app without its tables.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import psycopg
from psycopg import sql

from agentlane.errors import MigrationError

DEFAULT_APP_ROLE = "agentlane_app"
DEFAULT_AUDIT_ROLE = "agentlane_auditor"

#: Tables the app reads but must never change (history and what only migrations write).
_READ_ONLY_FOR_APP = (
    "agent_events", "agent_event_blobs", "schema_migrations", "cluster_config"
)


def ensure_roles(conn: psycopg.Connection, *, app: str, auditor: str) -> None:
    """Create the two roles if missing and grant exactly what each may do (idempotent)."""
    for role in (app, auditor):
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
        if exists is None:
            conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
    a, r = sql.Identifier(app), sql.Identifier(auditor)
    statements = [
        sql.SQL("GRANT USAGE ON SCHEMA public TO {}, {}").format(a, r),
        sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {}")
        .format(a),
        sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {}").format(a),
        sql.SQL("REVOKE UPDATE, DELETE, TRUNCATE ON {} FROM {}").format(
            sql.SQL(", ").join(sql.Identifier(t) for t in _READ_ONLY_FOR_APP), a
        ),
        sql.SQL("REVOKE INSERT ON schema_migrations, cluster_config FROM {}").format(a),
        sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}").format(r),
        sql.SQL(
            "ALTER DEFAULT PRIVILEGES IN SCHEMA public "
            "GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {}"
        ).format(a),
        sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {}")
        .format(r),
    ]
    with conn.transaction():
        for statement in statements:
            conn.execute(statement)


def grant_logins(conn: psycopg.Connection, members: Mapping[str, Sequence[str]]) -> None:
    """Make each login (an existing role that can log in, e.g. a workload's Cloud SQL IAM user)
    a member of its role, ``{role: logins}``, all or none (idempotent); :class:`MigrationError`
    names a login that does not exist."""
    for logins in members.values():
        for login in logins:
            found = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (login,)).fetchone()
            if found is None:
                raise MigrationError(
                    f"login {login!r} does not exist: create it first (a Cloud SQL IAM user, "
                    "or CREATE ROLE ... LOGIN)"
                )
    with conn.transaction():
        for role, logins in members.items():
            for login in logins:
                conn.execute(
                    sql.SQL("GRANT {} TO {}").format(sql.Identifier(role), sql.Identifier(login))
                )
