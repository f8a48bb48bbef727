"""The engine's index changes of a group commit (``RunIndex.apply_changes``, one UPDATE for many
runs) leave every row, and answer "commands waiting", exactly as one ``apply_change`` per run
would: each kind of change, with and without a command newer than what the run has seen."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

from agentlane.commands import Commands
from agentlane.db import Database
from agentlane.run_index import IndexChange, PendingChange, RunIndex
from agentlane.store import lock_stream

LATER = datetime(2030, 1, 1, tzinfo=UTC)

CHANGES = [
    IndexChange(status="running"),
    IndexChange(status="suspended", wake="never"),
    IndexChange(status="suspended", wake=LATER),
    IndexChange(wake="now"),
    IndexChange(status="running", wake="keep"),
    IndexChange(delete=True),
]


async def _start(commands: Commands, session: str, *, command_after: bool) -> tuple[str, int]:
    accepted = await commands.start_run(
        tenant_id="t", session_id=session, run_id=session, message="m"
    )
    seen = 1  # the run has seen its RunAccepted
    if command_after:
        await commands.signal_run(tenant_id="t", execution_id=accepted.execution_id, name="go")
    return accepted.execution_id, seen


async def _row(db: Database, execution_id: str) -> tuple[Any, ...] | None:
    async with db.connection() as conn:
        return await (
            await conn.execute(
                "SELECT status, wake_at IS NULL, wake_at = %s, "
                "wake_at IS NOT NULL AND wake_at <= now() FROM run_index WHERE execution_id = %s",
                (LATER, execution_id),
            )
        ).fetchone()


async def test_group_changes_equal_one_change_per_run(db: Database, commands: Commands) -> None:
    cases = list(itertools.product(CHANGES, (False, True)))
    singles, groups = [], []
    for index, (change, newer) in enumerate(cases):
        singles.append((change, await _start(commands, f"one{index}", command_after=newer)))
        groups.append((change, await _start(commands, f"all{index}", command_after=newer)))

    answers_one = []
    for index, (change, (execution_id, seen)) in enumerate(singles):
        async with db.transaction() as conn:
            await lock_stream(conn, "t", f"one{index}")
            answers_one.append(
                await RunIndex.apply_change(
                    conn, tenant_id="t", execution_id=execution_id, seen_seq=seen, change=change
                )
            )
    pending = [
        PendingChange("t", execution_id, seen, change) for change, (execution_id, seen) in groups
    ]
    async with db.transaction() as conn:
        for index in range(len(groups)):
            await lock_stream(conn, "t", f"all{index}")
        await RunIndex.apply_changes(conn, [(change, []) for change in pending])

    for index, (change, newer) in enumerate(cases):
        single_row = await _row(db, singles[index][1][0])
        group_row = await _row(db, groups[index][1][0])
        assert group_row == single_row, (change, newer, group_row, single_row)
        assert pending[index].commands_waiting == answers_one[index], (change, newer)
    # The cases cover both answers and a deleted row.
    assert set(answers_one) == {True, False}
    assert any(_ is None for _ in [await _row(db, s[1][0]) for s in singles])
