"""Where the operator and audit commands (``migrate``, ``shards``, ``replay``) find the database.

``--database-url``, else ``DATABASE_URL``, else the embedded database of the ``agentlane dev``
stack whose data directory is ``./.agentlane`` (its port is kept in ``pg.port``), announced on
stderr so a report never comes from a database the operator did not mean. The server is reached
once before any work, within a few seconds, so an unreachable one is one line, not a pool's retries.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import psycopg

from agentlane.blobs import Blobs, open_blob_store
from agentlane.cli.embedded_pg import local_url
from agentlane.db import translate_errors
from agentlane.errors import ConfigError
from agentlane.settings import Settings, check_database_url

#: ``agentlane dev``'s default data directory and the database it creates in its server.
DEV_DATA_DIR = Path(".agentlane")
DEV_DATABASE = "agentlane"
#: How long an operator command waits for the server before it says it is unreachable.
CONNECT_TIMEOUT_S = 5


def add_database_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url", metavar="URL",
        help="the event store (default: DATABASE_URL, else the dev stack of ./.agentlane)",
    )


def database_url(args: argparse.Namespace, settings: Settings, *, command: str) -> str:
    """The database this command works on, checked to be reachable (ConfigError, StoreError)."""
    if args.database_url:
        try:
            url = check_database_url(args.database_url)
        except ValueError as exc:
            raise ConfigError(f"--database-url: {exc}") from None
    elif settings.database_url is not None:
        url = settings.require_database_url()
    else:
        url = _dev_stack_database(command)
    with translate_errors():
        psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S).close()
    return url


def _dev_stack_database(command: str) -> str:
    port_file = DEV_DATA_DIR / "pg.port"
    try:
        port = int(port_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        raise ConfigError(
            "DATABASE_URL is not set and there is no agentlane dev stack here "
            f"({port_file.resolve()} is missing): pass --database-url or set DATABASE_URL"
        ) from None
    sys.stderr.write(
        f"agentlane {command}: using the agentlane dev database on 127.0.0.1:{port} "
        f"({port_file}); set DATABASE_URL for another\n"
    )
    return local_url(port, DEV_DATABASE)


def operator_blobs(args: argparse.Namespace, settings: Settings) -> Blobs | None:
    """The blob store of the database this command works on: ``AGENTLANE_BLOB_STORE``, else, on
    the ``agentlane dev`` database, that stack's blob directory (None: no blob store)."""
    if settings.blob_store is not None:
        url = settings.blob_store
    elif args.database_url or settings.database_url is not None:
        return None
    else:
        url = str((DEV_DATA_DIR / "blobs").resolve())
    store = open_blob_store(url, emulator=settings.storage_emulator_host)
    return Blobs(store, threshold=settings.blob_threshold)
