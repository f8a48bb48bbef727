"""``agentlane runs``: operator commands on unfinished runs.

``agentlane runs move-version --workflow agent --from 1 --to 2`` moves every unfinished run that
runs with version 1 of the workflow to version 2 (``--execution`` names runs one by one instead;
``--dry-run`` lists them and writes nothing). Each move is a ``VersionMoved`` event: the run's next
advance replays its journal with the new version's code, on a runner that has it. A run is never
moved implicitly (a deploy does not move runs): prove the two versions compatible first, with the
golden replays of the new code against histories the old one recorded, or a run whose journal
the new code does not reproduce is left waiting, untouched (``agentlane_runs_unrunnable`` with
reason ``diverged``), until it is moved again or its old code comes back.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from agentlane.cli.operator_db import add_database_option, database_url
from agentlane.commands import Commands, workflow_version_of
from agentlane.db import open_database
from agentlane.errors import CommandError
from agentlane.run_index import PinnedRun, RunIndex
from agentlane.settings import Settings
from agentlane.store import EventStore


def add_arguments(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="runs_command", metavar="COMMAND", required=True)
    move = commands.add_parser(
        "move-version", help="move unfinished runs to another version of their workflow",
        description="move unfinished runs to another version of their workflow",
    )
    move.add_argument("--to", dest="to_version", required=True, metavar="VERSION",
                      help="the version the runs continue with")
    move.add_argument("--workflow", default="agent", help="the workflow (default: agent)")
    move.add_argument("--from", dest="from_version", metavar="VERSION",
                      help="move every unfinished run on this version")
    move.add_argument("--execution", action="append", default=[], metavar="ID",
                      help="move this run (repeatable) instead of every run on --from")
    move.add_argument("--tenant", help="only this tenant's runs")
    move.add_argument("--reason", help="recorded in each VersionMoved event")
    move.add_argument("--dry-run", action="store_true", help="list the runs, write nothing")
    add_database_option(move)


def main(args: argparse.Namespace, settings: Settings) -> int:
    if bool(args.from_version) == bool(args.execution):
        raise CommandError("name the runs: either --from VERSION or --execution ID")
    url = database_url(args, settings, command="runs")
    return asyncio.run(_move(url, args, settings.shards))


async def _move(url: str, args: argparse.Namespace, shards: int) -> int:
    async with open_database(url, name="runs-cli", min_size=1, max_size=2, wait_s=10) as db:
        store = EventStore(db, shards=shards)
        index = RunIndex(db)
        commands = Commands(store, index)
        if args.from_version:
            runs = await index.runs_on_version(
                args.workflow, args.from_version, tenant_id=args.tenant
            )
        else:
            runs = [
                await _named(store, index, execution, args.tenant) for execution in args.execution
            ]
        moved = 0
        for number, run in enumerate(runs, start=1):
            prefix = f"[{number}/{len(runs)}] {run.tenant_id}/{run.execution_id}"
            if args.dry_run:
                print(f"{prefix}: on {run.workflow} {run.version}; would move to {args.to_version}")
                continue
            event = await commands.move_version(
                tenant_id=run.tenant_id, execution_id=run.execution_id,
                to_version=args.to_version, reason=args.reason,
            )
            if event is None:
                print(f"{prefix}: already on {args.to_version}")
            else:
                moved += 1
                print(f"{prefix}: {event.data['fromVersion']} -> {args.to_version} "
                      f"(event {event.event_id})")
        verb = "would move" if args.dry_run else "moved"
        print(f"{verb} {len(runs) if args.dry_run else moved} run(s)", file=sys.stderr)
    return 0


async def _named(
    store: EventStore, index: RunIndex, execution_id: str, tenant_id: str | None
) -> PinnedRun:
    """The unfinished run ``execution_id`` names (execution ids are unique across tenants)."""
    tenant = await index.tenant_of(execution_id)
    if tenant is None or (tenant_id is not None and tenant != tenant_id):
        raise CommandError(f"run {execution_id!r}: no such unfinished run")
    events = await store.read_execution(tenant, execution_id)
    workflow, version = workflow_version_of(events) or ("", "(not started)")
    return PinnedRun(tenant, execution_id, events[0].session_id, workflow, version)
