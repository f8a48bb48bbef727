"""The stable shard function: which shard owns a (tenant, session) stream."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def shard_for(tenant_id: str, session_id: str, shard_count: int) -> int:
    """Return the shard of a session, stable across processes, machines and Python versions.

    Python's ``hash()`` is salted per process, so it would route one session to different shards.
    """
    if shard_count <= 0:
        raise ValueError("shard_count must be positive")
    digest = hashlib.blake2b(f"{tenant_id}/{session_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shard_count


def compact_ranges(numbers: Iterable[int]) -> str:
    """``[0, 1, 2, 5, 7, 8]`` -> ``"0-2,5,7-8"``: shard ids (or tokens) for one log line or cell."""
    parts: list[str] = []
    ordered = sorted(set(numbers))
    start = prev = None
    for number in [*ordered, None]:
        if number is not None and prev is not None and number == prev + 1:
            prev = number
            continue
        if start is not None:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = number
    return ",".join(parts)
