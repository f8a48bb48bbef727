"""Driver errors become the core's error tree by SQLSTATE, on a real server; and every error's
wire answer is one thing, whichever door (HTTP, WebSocket) it leaves by."""

from __future__ import annotations

import json

import pytest

from agentlane.bus import BusUnavailable
from agentlane.db import Database, create_pool
from agentlane.errors import (
    AgentlaneError,
    InvalidEvent,
    RunConflict,
    RunFinished,
    RunNotFound,
    SchemaMissing,
    StoreConflict,
    StoreError,
    StoreReadOnly,
    StoreUnavailable,
)
from agentlane.problems import problem_for
from gateway.protocol import error_frame


async def test_a_unique_violation_is_a_conflict_with_its_sqlstate(db: Database) -> None:
    with pytest.raises(StoreConflict) as caught:
        async with db.connection() as conn:
            await conn.execute("CREATE TEMP TABLE t (k int PRIMARY KEY)")
            await conn.execute("INSERT INTO t VALUES (1)")
            await conn.execute("INSERT INTO t VALUES (1)")
    assert caught.value.sqlstate == "23505"


async def test_a_missing_table_says_migrate(db: Database) -> None:
    with pytest.raises(SchemaMissing, match="agentlane migrate") as caught:
        async with db.connection() as conn:
            await conn.execute("SELECT * FROM no_such_table")
    assert caught.value.sqlstate == "42P01"
    # Reaching a client, it is a fault of ours: a 500 that says nothing of the schema.
    assert (caught.value.status, caught.value.detail) == (500, "internal error")


async def test_a_read_only_server_is_retryable(db: Database) -> None:
    """What a Cloud SQL failover looks like to a writer: a read-only transaction."""
    with pytest.raises(StoreReadOnly) as caught:
        async with db.transaction() as conn:
            await conn.execute("SET TRANSACTION READ ONLY")
            await conn.execute("CREATE TABLE t (k int)")
    assert isinstance(caught.value, StoreUnavailable) and caught.value.sqlstate == "25006"


async def test_an_exhausted_pool_is_unavailable(database_url: str) -> None:
    pool = create_pool(database_url, name="tiny", min_size=1, max_size=1, timeout_s=0.3)
    async with pool:
        db = Database(pool)
        async with db.connection():
            with pytest.raises(StoreUnavailable, match="no database connection available"):
                async with db.connection():
                    pass


async def test_an_unknown_server_error_keeps_its_sqlstate_and_hides_its_message(
    db: Database,
) -> None:
    with pytest.raises(StoreError) as caught:
        async with db.connection() as conn:
            await conn.execute("SELECT 1 / 0")
    assert type(caught.value) is StoreError and caught.value.sqlstate == "22012"
    assert caught.value.detail == "internal error", "a driver's message never reaches a client"
    assert caught.value.code == "command_failed"


@pytest.mark.parametrize(
    ("error", "status", "slug", "code"),
    [
        (RunNotFound("ex_1"), 404, "not-found", "run_not_found"),
        (RunConflict("s", "ex_1"), 409, "run-conflict", "run_conflict"),
        (RunFinished("ex_1", "completed"), 409, "run-finished", "run_finished"),
        (InvalidEvent("data.text: Field required"), 422, "invalid-command", "invalid_command"),
        (StoreUnavailable("connection refused: password=hunter2"), 503, "unavailable",
         "unavailable"),
        (StoreConflict("duplicate key value violates unique constraint"), 500, "internal-error",
         "command_failed"),
        (BusUnavailable("Pub/Sub unavailable: password=hunter2"), 500, "internal-error",
         "command_failed"),
    ],
)
def test_one_error_one_answer_on_both_doors(
    error: AgentlaneError, status: int, slug: str, code: str
) -> None:
    answer = problem_for(error)
    problem = json.loads(bytes(answer.body))
    frame = json.loads(error_frame(error.code, error.detail))
    assert (answer.status_code, problem["type"].rsplit("/", 1)[1]) == (status, slug)
    assert (frame["code"], frame["message"]) == (code, problem["detail"])
    assert "hunter2" not in problem["detail"] and "unique" not in problem["detail"]
    if error.retry_after_s is not None:
        assert int(answer.headers["retry-after"]) >= 1
