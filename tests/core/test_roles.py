"""The database roles agentlane migrate keeps: the app role the components run as can append
and work, and cannot change history (no UPDATE, DELETE or TRUNCATE of agent_events, and, owning
nothing, no disabling the trigger that guards it); the auditor reads and writes nothing; tables a
rebuild swaps in keep the grants."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from psycopg import errors, sql

from agentlane import cli
from agentlane.commands import Commands
from agentlane.db import open_database, with_session_options
from agentlane.run_index import RunIndex
from agentlane.store import EventStore
from tests.conftest import TEST_SHARDS

APP, AUDITOR = "agentlane_app", "agentlane_auditor"

REWRITES = [
    "UPDATE agent_events SET payload = '{}'::jsonb",
    "DELETE FROM agent_events",
    "TRUNCATE agent_events",
    "ALTER TABLE agent_events DISABLE TRIGGER ALL",
    "DROP TABLE agent_events",
    "INSERT INTO schema_migrations (version, name, checksum) VALUES (9999, 'x', 'x')",
]


async def test_the_app_role_works_and_cannot_rewrite_history(database_url: str) -> None:
    app_url = with_session_options(database_url, role=APP)
    async with open_database(app_url, name="as-app", min_size=1, max_size=4) as db:
        commands = Commands(EventStore(db, shards=TEST_SHARDS), RunIndex(db))
        accepted = await commands.start_run(
            tenant_id="t", session_id="s", run_id="r", message="m"
        )
        await commands.cancel_run(tenant_id="t", execution_id=accepted.execution_id)
    with psycopg.connect(app_url, autocommit=True) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (APP,)
        for statement in REWRITES:
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute(statement)
        count = conn.execute("SELECT count(*) FROM agent_events").fetchone()
    assert count == (2,)


def test_the_auditor_reads_and_writes_nothing(database_url: str) -> None:
    with psycopg.connect(with_session_options(database_url, role=AUDITOR), autocommit=True) as c:
        assert c.execute("SELECT count(*) FROM agent_events").fetchone() == (0,)
        assert c.execute("SELECT count(*) FROM run_index").fetchone() == (0,)
        for statement in ["INSERT INTO cluster_config (key, value) VALUES ('x', 'y')",
                          "DELETE FROM run_index", "UPDATE cluster_shards SET runner_id = NULL"]:
            with pytest.raises(errors.InsufficientPrivilege):
                c.execute(statement)


def test_tables_a_rebuild_swaps_in_keep_the_apps_grants(
    database_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``replay rebuild`` (the operator, as the owner) replaces the read-model tables."""
    monkeypatch.setenv("AGENTLANE_SHARDS", str(TEST_SHARDS))
    assert cli.main(["replay", "--database-url", database_url, "rebuild"]) == 0
    capsys.readouterr()
    with psycopg.connect(with_session_options(database_url, role=APP), autocommit=True) as conn:
        conn.execute("SELECT count(*) FROM read_runs").fetchone()
        conn.execute("DELETE FROM read_sessions")


def test_migrate_makes_the_named_logins_members_all_or_none(
    database_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Infra's mapping of workloads to roles: each Cloud SQL IAM user is granted its role by the
    migration; a login that does not exist fails the migration with nothing granted."""
    monkeypatch.setenv("AGENTLANE_SHARDS", str(TEST_SHARDS))
    suffix = uuid.uuid4().hex[:8]
    runner, auditor = f"runner_{suffix}", f"anchor_{suffix}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        for login in (runner, auditor):
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(login)))
    try:
        args = ["migrate", "--database-url", database_url, "--app-login", runner]
        assert cli.main([*args, "--audit-login", f"missing_{suffix}"]) == 1
        assert f"login 'missing_{suffix}' does not exist" in capsys.readouterr().err
        assert _members(database_url, runner) == []
        assert cli.main([*args, "--audit-login", auditor]) == 0
        assert cli.main([*args, "--audit-login", auditor]) == 0  # again: nothing changes
        assert _members(database_url, runner) == [APP]
        assert _members(database_url, auditor) == [AUDITOR]
        with psycopg.connect(psycopg.conninfo.make_conninfo(database_url, user=runner)) as c:
            assert c.execute("SELECT count(*) FROM agent_events").fetchone() == (0,)
            with pytest.raises(errors.InsufficientPrivilege):
                c.execute("DELETE FROM agent_events")
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            for login in (runner, auditor):
                conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(login)))


def _members(database_url: str, login: str) -> list[str]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT r.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid "
            "JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = %s ORDER BY 1",
            (login,),
        ).fetchall()
    return [row[0] for row in rows]
