"""``agentlane blobs``: the blob store's upkeep.

``agentlane blobs gc`` deletes the blobs no event references once they are older than the grace
period (``--grace-hours``, default 24): a blob whose event never committed. Every referenced blob
is kept; the log is append-only, so that is for as long as the log. ``--dry-run`` lists what it
would delete. It reads the references in one database snapshot before it lists the store.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime, timedelta

from agentlane.blobs.retention import DEFAULT_GRACE, collect
from agentlane.cli.operator_db import add_database_option, database_url, operator_blobs
from agentlane.errors import ConfigError
from agentlane.replay.progress import progress, wanted
from agentlane.settings import Settings
from agentlane.store.audit import referenced_blobs, snapshot


def add_arguments(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="blobs_command", metavar="COMMAND", required=True)
    gc = commands.add_parser(
        "gc", help="delete blobs no event references, past a grace period",
        description="Delete the blobs of AGENTLANE_BLOB_STORE (or the dev stack's) that no event "
        "references and that nobody wrote or reused within the grace period.",
    )
    gc.add_argument(
        "--grace-hours", type=float, default=DEFAULT_GRACE.total_seconds() / 3600,
        metavar="HOURS", help="spare blobs written within this many hours (default: %(default)s)",
    )
    gc.add_argument("--dry-run", action="store_true", help="list what would go, delete nothing")
    add_database_option(gc)


def main(args: argparse.Namespace, settings: Settings) -> int:
    if args.grace_hours < 1:
        raise ConfigError("--grace-hours: at least 1 (a writer may still commit a reference)")
    url = database_url(args, settings, command="blobs")
    blobs = operator_blobs(args, settings)
    if blobs is None:
        raise ConfigError("no blob store: set AGENTLANE_BLOB_STORE (gs://BUCKET/PREFIX or a DIR)")
    with snapshot(url) as conn:
        referenced = referenced_blobs(conn)
    with progress("listing blobs", None, enabled=wanted()) as bar:
        outcome = asyncio.run(collect(
            blobs.store, referenced, now=datetime.now(UTC),
            grace=timedelta(hours=args.grace_hours), dry_run=args.dry_run, advance=bar.advance,
        ))
    verb = "would delete" if args.dry_run else "deleted"
    for sha in outcome.deleted:
        sys.stdout.write(f"{verb} {sha}\n")
    sys.stderr.write(
        f"{blobs.store.url}: {outcome.listed} blobs, {outcome.referenced} referenced, "
        f"{outcome.recent} within the grace period, {verb} {len(outcome.deleted)}"
        + (f", {outcome.spared} reused meanwhile and kept" if outcome.spared else "") + "\n"
    )
    return 0
