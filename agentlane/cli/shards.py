"""``agentlane shards``: who owns which shard, and until when (database time)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table

from agentlane.cli.operator_db import add_database_option, database_url
from agentlane.db import open_database
from agentlane.leases import shard_rows
from agentlane.settings import Settings
from agentlane.sharding import compact_ranges
from runners.membership import runner_rows


@dataclass(frozen=True, slots=True)
class ShardView:
    """One shard as ``agentlane shards`` shows it: its lease and its holder's heartbeat."""

    shard_id: int
    runner_id: str | None
    lease_token: int
    expires_in_s: float | None
    heartbeat_age_s: float | None
    draining: bool


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_database_option(parser)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def summarize(rows: list[ShardView]) -> list[dict[str, Any]]:
    """One entry per owner with a live lease, plus one for shards nobody holds."""
    owners: dict[str | None, list[ShardView]] = {}
    for row in rows:
        held = row.runner_id is not None and row.expires_in_s is not None and row.expires_in_s > 0
        owners.setdefault(row.runner_id if held else None, []).append(row)
    summary = []
    by_owner = sorted(owners.items(), key=lambda item: (item[0] is None, item[0] or ""))
    for runner_id, owned in by_owner:
        expiries = [r.expires_in_s for r in owned if r.expires_in_s is not None]
        summary.append(
            {
                "runner": runner_id,
                "shards": [r.shard_id for r in owned],
                "count": len(owned),
                "leaseExpiresInS": round(min(expiries), 3) if runner_id and expiries else None,
                "heartbeatAgeS": (
                    round(owned[0].heartbeat_age_s, 3)
                    if runner_id and owned[0].heartbeat_age_s is not None
                    else None
                ),
                "draining": bool(runner_id and owned[0].draining),
                "tokens": {str(r.shard_id): r.lease_token for r in owned},
            }
        )
    return summary


async def _load(url: str) -> list[ShardView]:
    async with open_database(url, name="shards-cli", min_size=1, max_size=1, wait_s=10) as db:
        shards = await shard_rows(db)
        runners = {row.runner_id: row for row in await runner_rows(db)}
    views = []
    for shard in shards:
        runner = runners.get(shard.runner_id) if shard.runner_id is not None else None
        views.append(
            ShardView(
                shard.shard_id, shard.runner_id, shard.lease_token, shard.expires_in_s,
                runner.heartbeat_age_s if runner is not None else None,
                runner.draining if runner is not None else False,
            )
        )
    return views


def main(args: argparse.Namespace, settings: Settings) -> int:
    summary = summarize(asyncio.run(_load(database_url(args, settings, command="shards"))))
    if args.json:
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
        return 0
    table = Table(title="Shard leases")
    table.add_column("runner")
    table.add_column("shards")
    table.add_column("count", justify="right")
    table.add_column("lease expires in", justify="right")
    table.add_column("heartbeat age", justify="right")
    # A token grows each time a shard changes hands: after a failover the new owner's are higher.
    table.add_column("lease tokens", justify="right")
    for entry in summary:
        expires = entry["leaseExpiresInS"]
        heartbeat = entry["heartbeatAgeS"]
        runner = entry["runner"] or "(unowned)"
        if entry["draining"]:
            runner += " (draining)"
        table.add_row(
            runner,
            compact_ranges(entry["shards"]),
            str(entry["count"]),
            "-" if expires is None else f"{expires:.1f}s",
            "-" if heartbeat is None else f"{heartbeat:.1f}s",
            compact_ranges(entry["tokens"].values()) or "-",
        )
    Console().print(table)
    return 0
