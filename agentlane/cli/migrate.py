"""``agentlane migrate``."""

from __future__ import annotations

import argparse
import sys

from agentlane.cli.operator_db import add_database_option, database_url
from agentlane.migrate import migrate
from agentlane.settings import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_database_option(parser)
    parser.add_argument(
        "--app-login", action="append", default=[], metavar="LOGIN",
        help="make this existing login a member of the app role (repeatable; a workload's "
        "Cloud SQL IAM user)",
    )
    parser.add_argument(
        "--audit-login", action="append", default=[], metavar="LOGIN",
        help="make this existing login a member of the auditor role (repeatable)",
    )


def main(args: argparse.Namespace, settings: Settings) -> int:
    url = database_url(args, settings, command="migrate")
    applied = migrate(
        url, shards=settings.shards, app_role=settings.app_role, audit_role=settings.audit_role,
        app_logins=args.app_login, audit_logins=args.audit_login,
    )
    names = ", ".join(f"{m.version:04d}_{m.name}" for m in applied) or "nothing to apply"
    sys.stdout.write(f"migrated: {names}\n")
    return 0
