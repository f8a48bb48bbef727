"""``agentlane migrate``."""

from __future__ import annotations

import argparse
import sys

from agentlane.migrate import migrate
from agentlane.settings import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url", help="overrides DATABASE_URL (the event store to migrate)"
    )


def main(args: argparse.Namespace, settings: Settings) -> int:
    url = args.database_url or settings.require_database_url()
    applied = migrate(url, shards=settings.shards)
    names = ", ".join(f"{m.version:04d}_{m.name}" for m in applied) or "nothing to apply"
    sys.stdout.write(f"migrated: {names}\n")
    return 0
