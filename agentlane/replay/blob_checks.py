"""``replay verify``'s check of the blobs events reference: each must be in the blob store and be
the bytes its reference names, so the hash chain, which covers the reference, proves the value.

Each blob is read once however many events reference it; a missing or altered one is a mismatch
at every event that references it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from agentlane.blobs import BlobCorrupt, BlobMissing, BlobRef, Blobs, BlobUnavailable, check
from agentlane.replay.verify import Mismatch
from agentlane.store.audit import EventFilter, Snapshot, blob_references


@dataclass(frozen=True, slots=True)
class BlobSummary:
    references: int
    blobs: int
    mismatches: int


def check_blobs(
    conn: Snapshot,
    where: EventFilter,
    blobs: Blobs,
    *,
    report: Callable[[Mismatch], None],
    advance: Callable[[int], None],
) -> BlobSummary:
    """Check every blob the events matching ``where`` reference; report each bad reference."""
    verdicts: dict[str, str | None] = {}
    references = mismatches = 0
    loop = asyncio.new_event_loop()
    try:
        for found in blob_references(conn, where):
            references += 1
            sha = found.ref.sha256
            if sha not in verdicts:
                verdicts[sha] = loop.run_until_complete(_verdict(blobs, found.ref))
                advance(1)
            problem = verdicts[sha]
            if problem is not None:
                mismatches += 1
                report(Mismatch(
                    found.tenant_id, found.session_id,
                    f"{found.field}Ref {sha}: {problem}", found.seq, found.event_id,
                ))
    finally:
        loop.close()
    return BlobSummary(references, len(verdicts), mismatches)


async def _verdict(blobs: Blobs, ref: BlobRef) -> str | None:
    try:
        check(ref, await blobs.store.get(ref.sha256))
    except BlobMissing:
        return f"the blob is not in {blobs.store.url}"
    except BlobCorrupt as exc:
        return str(exc).removeprefix(f"blob {ref.sha256}: ")
    except BlobUnavailable as exc:
        return f"the blob store could not be read: {exc}"
    return None
