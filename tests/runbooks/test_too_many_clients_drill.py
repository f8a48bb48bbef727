"""The "too many clients" drill (runbooks/too-many-clients.md): a runner whose pools want more
connections than the server has left keeps working on the ones it gets.

A real PostgreSQL with a small `max_connections`, most of it held by another client. A real runner
process logs in as an ordinary (non-superuser) login, as workloads do in production, so the
server's limit applies to it. The runner's pools want 13 connections (a pool of 10, its lease pool
of 2, one LISTEN). Every run still completes, the runner stays up, and the server's log shows that
it refused connections. The budget check (infra/connection_budget.py) keeps a deployed stack out
of this state; the drill shows what happens when something else takes the slots anyway.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import psycopg
from psycopg import sql

from agentlane.cli.embedded_pg import EmbeddedPostgres, local_url
from agentlane.commands import Commands
from agentlane.db import open_database, with_session_options
from agentlane.migrate import migrate
from agentlane.roles import DEFAULT_APP_ROLE
from agentlane.run_index import RunIndex
from agentlane.store import EventStore
from tests.conftest import TEST_SHARDS
from tests.fixtures.processes import stop_all
from tests.runners_process.harness import ATTEMPTS_DDL, runner_env, spawn_runner, work_message
from tests.runners_process.journal_checks import query, wait_for

MAX_CONNECTIONS = 12  # 3 of them reserved for superusers
HELD_ELSEWHERE = 4  # what another client holds: 5 ordinary slots are left for the runner
LOGIN = "drill_runner"
RUNS = 24


async def start_runs(url: str) -> None:
    async with open_database(url, name="drill-commands", min_size=1, max_size=1) as db:
        commands = Commands(EventStore(db, shards=TEST_SHARDS), RunIndex(db))
        for i in range(RUNS):
            await commands.start_run(
                tenant_id="t", session_id=f"s{i}", run_id=f"r{i}",
                message=work_message(steps=2, step_s=0.05),
            )


def test_a_runner_short_of_connections_finishes_every_run(tmp_path: Path) -> None:
    server = EmbeddedPostgres(
        tmp_path / "pg", settings={"max_connections": str(MAX_CONNECTIONS)}
    )
    held: list[psycopg.Connection] = []
    runner = None
    try:
        server.start()
        owner = server.url()
        migrate(owner, shards=TEST_SHARDS)
        with psycopg.connect(owner, autocommit=True) as conn:
            conn.execute(ATTEMPTS_DDL)
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN IN ROLE {}").format(
                    sql.Identifier(LOGIN), sql.Identifier(DEFAULT_APP_ROLE)
                )
            )
            conn.execute(
                sql.SQL("GRANT INSERT, SELECT ON test_step_attempts TO {}").format(
                    sql.Identifier(DEFAULT_APP_ROLE)
                )
            )
        asyncio.run(start_runs(owner))
        login = str(psycopg.conninfo.make_conninfo(local_url(server.port), user=LOGIN))
        held = [psycopg.connect(login) for _ in range(HELD_ELSEWHERE)]

        env = runner_env(owner, "runner", AGENTLANE_DB_POOL_MAX="10")
        env["DATABASE_URL"] = with_session_options(login, role=DEFAULT_APP_ROLE)
        runner = spawn_runner("runner", env, tmp_path)

        def completed() -> int:
            rows = query(owner, "SELECT count(*) FROM agent_events WHERE event_type = 'Completed'")
            return int(rows[0][0])

        wait_for(lambda: completed() == RUNS, 120, f"all {RUNS} runs to complete", [runner])
        assert runner.popen.poll() is None, "the runner kept running"
        failed = query(owner, "SELECT count(*) FROM agent_events WHERE event_type = 'Failed'")
        assert failed[0][0] == 0
        log = server.log_file.read_text(errors="replace")
        assert "too many clients" in log or "remaining connection slots" in log, (
            "the server never refused the runner: the drill did not reach the limit"
        )
    finally:
        if runner is not None:
            stop_all([runner])
        for conn in held:
            conn.close()
        server.destroy()
