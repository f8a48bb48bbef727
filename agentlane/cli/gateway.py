"""``agentlane gateway``: the WebSocket gateway as one process (what its container runs).

Commands on its sockets meet the command service's per-tenant limits, read from the same
``AGENTLANE_CMD_RATE``, ``AGENTLANE_CMD_BURST``, ``AGENTLANE_CMD_MAX_ACTIVE_RUNS`` and
``AGENTLANE_CMD_RETRY_AFTER``: one tenant's quota whatever door its commands use. A tenant holds
at most ``AGENTLANE_CMD_MAX_TENANT_SOCKETS`` sockets open on the process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
from typing import Any

from prometheus_client import CollectorRegistry

from agentlane.admission import RateLimiter
from agentlane.auth import Authenticator
from agentlane.blobs import blobs_from_settings
from agentlane.bus import bus_for
from agentlane.cli.command_service import limits_from
from agentlane.db import Database, database_of
from agentlane.gc_policy import DEFAULT_GC_POLICY, GcPolicy
from agentlane.leases import check_recorded_shard_count
from agentlane.run_index import RunIndex
from agentlane.service import metrics_registry, run_service
from agentlane.settings import Settings
from agentlane.store import EventStore, Tail
from command_service import Limits
from gateway import UVICORN_WS_OPTIONS, Gateway, GatewayOptions


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (port: PORT)")


def main(args: argparse.Namespace, settings: Settings) -> int:
    # asyncio's own loop: uvloop saved 1 KiB per socket but made a reconnect storm 1 s slower
    # (BENCHMARKS.md, "Gateway at scale").
    asyncio.run(serve(settings, host=args.host))
    return 0


def build_gateway(
    settings: Settings,
    db: Database,
    *,
    authenticator: Authenticator,
    registry: CollectorRegistry,
    limits: Limits,
    rate: RateLimiter,
) -> Gateway:
    """The gateway for these settings, live from the bus ``AGENTLANE_BUS`` names, its commands
    under ``limits`` (the active-run cap) and ``rate`` (shared with the HTTP door in one process).
    """
    store = EventStore(db, shards=settings.shards, blobs=blobs_from_settings(settings))
    bus = bus_for(settings, store, Tail(db), subscription_prefix=f"{settings.topic}-gateway-")
    return Gateway(
        store=store,
        commands=limits.commands(store, RunIndex(db)),
        authenticator=authenticator,
        bus=bus,
        registry=registry,
        rate=rate,
        options=GatewayOptions(
            max_tenant_sockets=limits.max_tenant_sockets,
            allowed_origins=settings.allowed_origins,
        ),
    )



async def serve(
    settings: Settings,
    *,
    host: str,
    uvicorn_options: dict[str, Any] | None = None,
    gc_policy: GcPolicy | None = DEFAULT_GC_POLICY,
) -> None:
    """Serve the gateway until SIGTERM/SIGINT (``uvicorn_options`` and ``gc_policy=None`` only
    for benchmarks)."""
    registry = metrics_registry()
    async with database_of(settings, name="gateway") as db:
        # Commands over the socket route by shard: refuse to start with another shard count.
        await check_recorded_shard_count(db, settings.shards)
        limits = limits_from(argparse.Namespace(), os.environ)
        gateway = build_gateway(
            settings, db, authenticator=Authenticator.from_settings(settings), registry=registry,
            limits=limits, rate=limits.rate_limiter(),
        )
        async with gc_policy.applied() if gc_policy else contextlib.nullcontext():
            await run_service(
                [gateway],
                host=host,
                port=settings.port,
                registry=registry,
                uvicorn_options=UVICORN_WS_OPTIONS if uvicorn_options is None else uvicorn_options,
            )
