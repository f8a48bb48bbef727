"""``agentlane projector``: the projector as its own process (what its container runs)."""

from __future__ import annotations

import argparse
import asyncio
import uuid

from prometheus_client import CollectorRegistry

from agentlane.bus import pubsub_project
from agentlane.db import Database, database_of
from agentlane.errors import ConfigError
from agentlane.service import metrics_registry, run_service
from agentlane.settings import Settings
from projector import EventPublisher, Projector, ProjectorOptions


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="0.0.0.0", help="address to serve /healthz, /metrics on")
    parser.add_argument("--batch-size", type=int, default=1000, help="events per batch")
    parser.add_argument("--grace", type=float, default=10.0, help="seconds to drain on SIGTERM")
    parser.add_argument(
        "--publish-timeout", type=float, default=30.0,
        help="seconds a publish may retry before the batch is rewound and tried again",
    )


def build_projector(
    settings: Settings,
    db: Database,
    *,
    registry: CollectorRegistry,
    batch_size: int = 1000,
    publish_timeout_s: float = 30.0,
) -> Projector:
    """The projector for these settings: with a publisher on the ``pubsub`` bus."""
    if batch_size < 1:
        raise ConfigError("--batch-size must be at least 1")
    if publish_timeout_s <= 0:
        raise ConfigError("--publish-timeout must be positive")
    publisher = None
    if settings.bus == "pubsub":
        publisher = EventPublisher(
            project=pubsub_project(settings),
            topic=settings.topic,
            emulator_host=settings.pubsub_emulator_host,
            # In production the infrastructure owns the topic.
            create_topic=settings.pubsub_emulator_host is not None,
            rpc_timeout_s=publish_timeout_s / 2,
            retry_deadline_s=publish_timeout_s,
            stuck_after_s=publish_timeout_s * 3,
        )
    return Projector(
        db=db,
        holder=f"{settings.runner_identity}/{uuid.uuid4().hex[:8]}",
        publisher=publisher,
        options=ProjectorOptions(lease_ttl_s=settings.lease_ttl_s, batch_size=batch_size),
        registry=registry,
    )


def main(args: argparse.Namespace, settings: Settings) -> int:
    settings.require_database_url()
    if settings.bus == "pubsub":
        pubsub_project(settings)
    asyncio.run(_serve(settings, args))
    return 0


async def _serve(settings: Settings, args: argparse.Namespace) -> None:
    registry = metrics_registry()
    # A batch's transaction and its gap reads, the other follower, renewals and metrics at once.
    async with database_of(settings, name="projector", at_least=6) as db:
        projector = build_projector(
            settings, db, registry=registry, batch_size=args.batch_size,
            publish_timeout_s=args.publish_timeout,
        )
        await run_service(
            [projector], host=args.host, port=settings.port, grace_s=args.grace,
            registry=registry,
        )
