"""``agentlane edge``: the command API and the WebSocket gateway in one process on one port.

What ``agentlane dev`` serves on http://127.0.0.1:8080 (docs/contract.md: HTTP routes and ``/ws`` on
one port). Both components share one pool and one metrics registry; each is built exactly as its
own subcommand builds it, and the process takes the command service's flags (admission limits)
and ``--host``.
"""

from __future__ import annotations

import argparse
import asyncio
import os

from agentlane.auth import Authenticator
from agentlane.blobs import blobs_from_settings
from agentlane.cli import command_service
from agentlane.cli.gateway import build_gateway
from agentlane.db import database_of
from agentlane.service import Component, metrics_registry, run_service
from agentlane.settings import Settings
from command_service import CommandService, Limits
from gateway import UVICORN_WS_OPTIONS
from runners.membership import read_runner_rows


def add_arguments(parser: argparse.ArgumentParser) -> None:
    command_service.add_arguments(parser)


def main(args: argparse.Namespace, settings: Settings) -> int:
    limits = command_service.limits_from(args, os.environ)
    asyncio.run(serve(settings, limits, host=args.host, drain_grace_s=args.drain_grace))
    return 0


async def serve(
    settings: Settings, limits: Limits, *, host: str, drain_grace_s: float = 30.0
) -> None:
    """Serve both components on ``settings.port`` until SIGTERM/SIGINT."""
    authenticator = Authenticator.from_settings(settings)
    registry = metrics_registry()
    # One tenant, one rate, whichever door its commands come through.
    rate = limits.rate_limiter()
    async with database_of(settings, name="edge") as db:
        components: list[Component] = [
            CommandService(
                db=db, shards=settings.shards, authenticator=authenticator, limits=limits,
                rate=rate, registry=registry, runners=read_runner_rows,
                checkpoints=command_service.projector_checkpoints(settings),
                blobs=blobs_from_settings(settings),
            ),
            build_gateway(
                settings, db, authenticator=authenticator, registry=registry, limits=limits,
                rate=rate,
            ),
        ]
        await run_service(
            components,
            host=host,
            port=settings.port,
            registry=registry,
            grace_s=drain_grace_s,
            uvicorn_options={**UVICORN_WS_OPTIONS, "backlog": 4096},
        )
