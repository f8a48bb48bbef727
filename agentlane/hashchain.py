"""Canonical bytes of an event and the per-stream hash chain that lets an auditor prove that no
stored event was edited, removed or reordered."""

from __future__ import annotations

import hashlib
import json
from typing import Any

GENESIS_HASH = bytes(32)


def canonical_json(value: Any) -> bytes:
    """Deterministic JSON bytes: sorted keys, no whitespace, UTF-8.

    jsonb keeps numbers as ``numeric``, so ``1.0`` may come back as ``1`` and ``1e20`` as an int;
    integral floats are written as integers so the bytes are the same before and after storage.
    """
    return json.dumps(
        _normalize(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode()


def _normalize(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _normalize(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_normalize(item) for item in value]
    return value


def chain_hash(prev_hash: bytes, event_json: dict[str, Any]) -> bytes:
    """``sha256(prev_hash || canonical_json(event))`` over the full Event JSON."""
    digest = hashlib.sha256(prev_hash)
    digest.update(canonical_json(event_json))
    return digest.digest()
