"""``agentlane gateway``: the WebSocket gateway as one process (what its container runs)."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from prometheus_client import CollectorRegistry

from agentlane.auth import Authenticator
from agentlane.bus import bus_for
from agentlane.commands import Commands
from agentlane.db import Database, database_of
from agentlane.leases import check_recorded_shard_count
from agentlane.run_index import RunIndex
from agentlane.service import metrics_registry, run_service
from agentlane.settings import Settings
from agentlane.store import EventStore, Tail
from gateway import UVICORN_WS_OPTIONS, Gateway


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (port: PORT)")


def main(args: argparse.Namespace, settings: Settings) -> int:
    asyncio.run(serve(settings, host=args.host))
    return 0


def build_gateway(
    settings: Settings,
    db: Database,
    *,
    authenticator: Authenticator,
    registry: CollectorRegistry,
) -> Gateway:
    """The gateway for these settings, live from the bus ``AGENTLANE_BUS`` names."""
    store = EventStore(db, shards=settings.shards)
    bus = bus_for(settings, store, Tail(db), subscription_prefix=f"{settings.topic}-gateway-")
    return Gateway(
        store=store,
        commands=Commands(store, RunIndex(db)),
        authenticator=authenticator,
        bus=bus,
        registry=registry,
    )


async def serve(
    settings: Settings, *, host: str, uvicorn_options: dict[str, Any] | None = None
) -> None:
    """Serve the gateway until SIGTERM/SIGINT (``uvicorn_options`` only for benchmarks)."""
    registry = metrics_registry()
    async with database_of(settings, name="gateway") as db:
        # Commands over the socket route by shard: refuse to start with another shard count.
        await check_recorded_shard_count(db, settings.shards)
        gateway = build_gateway(
            settings, db, authenticator=Authenticator.from_settings(settings), registry=registry
        )
        await run_service(
            [gateway],
            host=host,
            port=settings.port,
            registry=registry,
            uvicorn_options=UVICORN_WS_OPTIONS if uvicorn_options is None else uvicorn_options,
        )
