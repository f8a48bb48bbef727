"""``agentlane edge``: the command API and the WebSocket gateway in one process on one port.

What ``agentlane dev`` serves on http://127.0.0.1:8080 (CONTRACT.md: HTTP routes and ``/ws`` on
one port). Both components share one pool; each is built exactly as its own ``main`` builds it,
and the process takes the command service's flags (admission limits) and ``--host``.
"""

from __future__ import annotations

import argparse
import asyncio
import os

from agentlane.auth import Authenticator
from agentlane.db import open_pool
from agentlane.logs import configure_logging
from agentlane.service import Component, run_service
from agentlane.settings import Settings
from agentlane.store import EventStore
from command_service import main as command_main
from command_service.admission import Limits
from command_service.component import CommandService
from gateway import main as gateway_main
from gateway.component import Gateway


def add_arguments(parser: argparse.ArgumentParser) -> None:
    command_main.add_arguments(parser)


def main(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    limits = command_main.limits_from(args, os.environ)
    configure_logging("edge", level=settings.log_level, json_lines=settings.log_format == "json")
    asyncio.run(serve(settings, limits, host=args.host))
    return 0


async def serve(settings: Settings, limits: Limits, *, host: str) -> None:
    """Serve both components on ``settings.port`` until SIGTERM/SIGINT."""
    url = settings.require_database_url()
    authenticator = Authenticator.from_settings(settings)
    async with open_pool(
        url, name="edge", min_size=settings.db_pool_min, max_size=settings.db_pool_max
    ) as pool:
        store = EventStore(pool, shards=settings.shards)
        components: list[Component] = [
            CommandService(
                store=store, authenticator=authenticator, database_url=url, limits=limits
            ),
            Gateway(
                store=store,
                authenticator=authenticator,
                source=gateway_main.build_source(settings, store),
            ),
        ]
        await run_service(
            components,
            host=host,
            port=settings.port,
            uvicorn_options={**gateway_main.UVICORN_WS_OPTIONS, "backlog": 4096},
        )
