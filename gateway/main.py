"""``agentlane gateway``: the WebSocket gateway as one process (what its container runs)."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import psycopg

from agentlane.auth import Authenticator
from agentlane.bus import PubSubBus
from agentlane.bus.clients import EMULATOR_PROJECT
from agentlane.db import open_pool
from agentlane.logs import configure_logging
from agentlane.migrate import check_shard_count
from agentlane.service import run_service
from agentlane.settings import Settings
from agentlane.store import EventStore
from gateway.component import Gateway
from gateway.protocol import MAX_FRAME_BYTES
from gateway.sources import BusSource, LiveSource, PostgresSource

#: uvicorn's WebSocket settings, chosen by benchmarks/gateway_sockets.py (BENCHMARKS.md,
#: "Gateway"): the sans-I/O websockets protocol without permessage-deflate holds the most idle
#: sockets per MiB; the frame limit is the contract's; keepalive is the gateway's own JSON ping.
UVICORN_WS_OPTIONS: dict[str, Any] = {
    "ws": "websockets-sansio",
    "ws_per_message_deflate": False,
    "ws_max_size": MAX_FRAME_BYTES,
    "ws_ping_interval": None,
    "ws_ping_timeout": None,
    "backlog": 4096,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (port: PORT)")


def main(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    configure_logging(
        "gateway", level=settings.log_level, json_lines=settings.log_format == "json"
    )
    asyncio.run(serve(settings, host=args.host))
    return 0


def build_source(settings: Settings, store: EventStore) -> LiveSource:
    """The live source ``AGENTLANE_BUS`` names (CONTRACT.md, "Environment")."""
    if settings.bus == "pubsub":
        return BusSource(
            PubSubBus(
                project=settings.google_cloud_project or EMULATOR_PROJECT,
                topic=settings.topic,
                emulator_host=settings.pubsub_emulator_host,
                subscription_prefix=f"{settings.topic}-gateway-",
            )
        )
    return PostgresSource(store, settings.require_database_url())


async def serve(
    settings: Settings, *, host: str, uvicorn_options: dict[str, Any] | None = None
) -> None:
    """Serve the gateway until SIGTERM/SIGINT (``uvicorn_options`` only for benchmarks)."""
    url = settings.require_database_url()
    authenticator = Authenticator.from_settings(settings)
    async with open_pool(
        url, name="gateway", min_size=settings.db_pool_min, max_size=settings.db_pool_max
    ) as pool:
        await _check_shards(pool, settings.shards)
        store = EventStore(pool, shards=settings.shards)
        gateway = Gateway(
            store=store, authenticator=authenticator, source=build_source(settings, store)
        )
        await run_service(
            [gateway],
            host=host,
            port=settings.port,
            uvicorn_options=UVICORN_WS_OPTIONS if uvicorn_options is None else uvicorn_options,
        )


async def _check_shards(pool: Any, configured: int) -> None:
    """Commands over the socket route by shard: refuse to start with a different shard count."""
    async with pool.connection() as conn:
        try:
            cursor = await conn.execute("SELECT value FROM cluster_config WHERE key = 'shards'")
            row = await cursor.fetchone()
        except psycopg.errors.UndefinedTable:
            return
    if row is not None:
        check_shard_count(int(row[0]), configured)
