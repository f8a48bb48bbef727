"""The chain hash of a stored row, computed the fast way for ``replay verify``.

The definition is :func:`agentlane.hashchain.chain_hash` over
:func:`agentlane.store.event_hash_input`. Verify computes the same bytes with less work per row:

- the payload is parsed from jsonb text with integral floats read as ints, which is exactly what
  ``canonical_json`` normalizes, so the walk over every value that normalization costs is skipped;
- ``createdAt`` is formatted once per distinct timestamp (a transaction's events share one);
- the hash-input dict is built directly instead of from ``to_json()`` minus ``eventId``.

:class:`Digester` checks itself against the definition on the first row it sees and on any row it
cannot be sure of, and falls back to the definition for good if they ever disagree.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from agentlane.events import format_timestamp
from agentlane.hashchain import chain_hash
from agentlane.records import StoredEvent
from agentlane.store import event_hash_input


def _number(text: str) -> int | float:
    value = float(text)
    return int(value) if value.is_integer() else value


_decode = json.JSONDecoder(parse_float=_number).decode
_encode = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, check_circular=False
).encode


def load_payload(text: str) -> Any:
    """A jsonb payload (as text) with integral floats as ints, as ``canonical_json`` sees them."""
    return _decode(text)


class Digester:
    """``chain_hash(prev_hash, event_hash_input(event))``, fast, self-checking."""

    def __init__(self) -> None:
        self._last_moment: datetime | None = None
        self._last_text = ""
        self._checked = False
        self.fast = True

    def timestamp(self, moment: datetime) -> str:
        if moment != self._last_moment:
            self._last_moment = moment
            self._last_text = format_timestamp(moment)
        return self._last_text

    def digest(self, prev_hash: bytes, event: StoredEvent) -> bytes:
        if not self.fast:
            return chain_hash(prev_hash, event_hash_input(event))
        body = {
            "seq": event.seq,
            "tenantId": event.tenant_id,
            "sessionId": event.session_id,
            "executionId": event.execution_id,
            "type": event.type,
            "data": event.data,
            "createdAt": self.timestamp(event.created_at),
        }
        digest = hashlib.sha256(prev_hash + _encode(body).encode()).digest()
        if not self._checked:
            self._checked = True
            if digest != chain_hash(prev_hash, event_hash_input(event)):
                self.fast = False
                return chain_hash(prev_hash, event_hash_input(event))
        return digest
