"""The stable shard function: which shard owns a (tenant, session) stream."""

from __future__ import annotations

import hashlib


def shard_for(tenant_id: str, session_id: str, shard_count: int) -> int:
    """Return the shard of a session, stable across processes, machines and Python versions.

    Python's ``hash()`` is salted per process, so it would route one session to different shards.
    """
    if shard_count <= 0:
        raise ValueError("shard_count must be positive")
    digest = hashlib.blake2b(f"{tenant_id}/{session_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shard_count
