"""The engine's index changes (``RunIndex.apply_changes``, one UPDATE for the runs of a group
commit; ``apply_change`` is it with one run) leave each row as its kind of change says, and answer
"commands waiting", with and without a command newer than what the run has seen: a newer command
makes a waiting run due at once (a wait never hides a signal or cancel)."""

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

# A row as (status, wake_at IS NULL, wake_at = LATER, due now).
DUE = (False, False, True)


def expected(change: IndexChange, newer: bool) -> tuple[Any, ...] | None:
    """The row a change must leave behind (the run was queued and due when it started)."""
    if change.delete:
        return None
    status = change.status or "queued"
    if change.wake == "never" and not newer:
        return (status, True, None, False)
    if isinstance(change.wake, datetime) and not newer:
        return (status, False, True, False)
    return (status, *DUE)


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


async def test_each_change_leaves_its_row_alone_or_in_a_group(
    db: Database, commands: Commands
) -> None:
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
        assert single_row == expected(change, newer), (change, newer, single_row)
        assert group_row == single_row, (change, newer, group_row, single_row)
        waiting = newer and not change.delete
        assert answers_one[index] is waiting, (change, newer)
        assert pending[index].commands_waiting == answers_one[index], (change, newer)
