"""Retention: a blob stays while an event references it, and goes once none does.

The log is append-only, so a referenced blob is kept for as long as the log: what the collector
deletes are the blobs no event references: a write whose events never committed (a crash, a
refused fenced append, an idempotent retry that found its key taken). Such a blob is only known to
be garbage once no writer can still commit a reference to it, so the collector spares every blob
written or touched within the grace period (writers touch an existing blob when they reuse it), and
a delete goes ahead only if the blob was not touched since it was listed.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from agentlane.blobs.stores import BlobStore

#: How long a written blob may wait for the event that references it (far beyond any append).
DEFAULT_GRACE = timedelta(hours=24)


@dataclass(slots=True)
class Collected:
    """What one collection saw and did."""

    listed: int = 0
    referenced: int = 0
    recent: int = 0
    deleted: list[str] = field(default_factory=list)
    #: Unreferenced and old, but touched since they were listed: a writer reused them.
    spared: int = 0


async def collect(
    store: BlobStore,
    referenced: Collection[str],
    *,
    now: datetime,
    grace: timedelta = DEFAULT_GRACE,
    dry_run: bool = False,
    advance: Callable[[int], None] = lambda _: None,
) -> Collected:
    """Delete the blobs of ``store`` that are not in ``referenced`` and were last written before
    ``now - grace``. ``referenced`` must be read before the listing starts (a blob referenced
    after that was written or touched after it too, so its age spares it)."""
    outcome = Collected()
    cutoff = now - grace
    async for blob in store.list():
        outcome.listed += 1
        advance(1)
        if blob.sha256 in referenced:
            outcome.referenced += 1
        elif blob.written_at > cutoff:
            outcome.recent += 1
        elif dry_run:
            outcome.deleted.append(blob.sha256)
        elif await store.delete(blob):
            outcome.deleted.append(blob.sha256)
        else:
            outcome.spared += 1
    return outcome
