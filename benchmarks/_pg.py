"""A throwaway, durable (fsync on) PostgreSQL for benchmarks, migrated, with a URL."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

from agentlane.cli.embedded_pg import EmbeddedPostgres
from agentlane.migrate import migrate


@contextlib.contextmanager
def benchmark_database(
    shards: int = 64, *, settings: dict[str, str] | None = None
) -> Iterator[str]:
    """Start a fresh embedded server with production-like durability; yield a migrated URL."""
    with tempfile.TemporaryDirectory(prefix="agentlane-bench-") as tmp:
        server = EmbeddedPostgres(Path(tmp) / "pgdata", settings=settings)
        server.start()
        try:
            url = server.url()
            migrate(url, shards=shards)
            yield url
        finally:
            server.destroy()
