"""``replay rebuild``: the projector recreates its read models from events (its function, not a
copy of it here), and the CLI reports what it did."""

from __future__ import annotations

import asyncio
import importlib
from typing import Any

from agentlane.db import open_pool
from agentlane.replay.errors import RebuildUnavailable


def rebuild(database_url: str) -> Any:
    """Run ``projector.rebuild_read_models(pool)``; returns what it reports."""
    try:
        projector = importlib.import_module("projector")
        rebuild_read_models = projector.rebuild_read_models
    except (ImportError, AttributeError):
        raise RebuildUnavailable(
            "the projector's rebuild_read_models is not installed in this version"
        ) from None

    async def run() -> Any:
        async with open_pool(database_url, name="replay-rebuild", min_size=1, max_size=4) as pool:
            return await rebuild_read_models(pool)

    return asyncio.run(run())
