"""``agentlane runner``: one shard runner (what a runner pod runs)."""

from __future__ import annotations

import argparse
import asyncio
import socket
from collections.abc import Callable

from agentlane.service import metrics_registry, run_service
from agentlane.settings import Settings
from runners.component import ExecutorFactory, Runner, RunnerOptions
from runners.workflows import build_executor


def _positive(kind: type[int] | type[float]) -> Callable[[str], int | float]:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
        return value

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host", default="0.0.0.0", help="address to serve /healthz, /readyz, /metrics on"
    )
    parser.add_argument(
        "--max-concurrent-runs", type=_positive(int), default=64,
        help="admission bound: runs advanced at once by this runner; more wait (default 64)",
    )
    parser.add_argument(
        "--max-runs-per-tenant", type=_positive(int), default=None, metavar="N",
        help="of those, at most N of one tenant, so others always find a slot "
             "(default: three quarters of --max-concurrent-runs)",
    )
    parser.add_argument(
        "--stall-timeout", type=_positive(float), default=60.0,
        help="seconds a shard's due work may wait with no progress before the shard is given "
             "up (default 60)",
    )
    parser.add_argument(
        "--poll-interval", type=_positive(float), default=1.0,
        help="seconds between work polls when no NOTIFY arrives (default 1)",
    )
    parser.add_argument(
        "--drain-grace", type=_positive(float), default=30.0,
        help="on SIGTERM, seconds in-flight steps may take before shards are released anyway "
             "(default 30)",
    )


def options_from(args: argparse.Namespace, settings: Settings) -> RunnerOptions:
    return RunnerOptions(
        max_concurrent_runs=args.max_concurrent_runs,
        max_runs_per_tenant=args.max_runs_per_tenant,
        stall_timeout_s=args.stall_timeout,
        poll_interval_s=args.poll_interval,
        drain_grace_s=args.drain_grace,
        address=f"{socket.gethostname()}:{settings.port}",
    )


def serve(
    settings: Settings, options: RunnerOptions, executor_factory: ExecutorFactory, *, host: str
) -> int:
    """Run one runner behind /healthz, /readyz and /metrics until SIGTERM; then drain."""
    settings.require_database_url()
    registry = metrics_registry()
    runner = Runner(settings, executor_factory, options, registry=registry)
    asyncio.run(
        run_service(
            [runner], host=host, port=settings.port, grace_s=options.drain_grace_s + 5,
            registry=registry,
        )
    )
    return 0


def main(args: argparse.Namespace, settings: Settings) -> int:
    return serve(settings, options_from(args, settings), build_executor, host=args.host)
