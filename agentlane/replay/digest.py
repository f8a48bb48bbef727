"""The chain hash of a stored row, computed the fast way for ``replay verify``.

The definition is :func:`agentlane.hashchain.chain_hash` over
:func:`agentlane.store.event_hash_input`. Verify computes the same bytes with less work per row:

- the payload is parsed from its jsonb text by one reused decoder, the bytes written by one
  reused encoder with ``canonical_json``'s settings;
- ``createdAt`` is formatted once per distinct timestamp (a transaction's events share one);
- the hash-input dict is built directly instead of from ``to_json()`` minus ``eventId``.

:class:`Digester` checks itself against the definition on the first row and every
``SELF_CHECK_EVERY``-th row after it, and falls back to the definition for good if they ever
disagree (say a field is added to the Event JSON), so a drift costs speed, never a false verdict.
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

SELF_CHECK_EVERY = 1000

_decode = json.JSONDecoder().decode
_encode = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, check_circular=False
).encode


def load_payload(text: str) -> Any:
    """A jsonb payload from its text: what psycopg's jsonb loader (``json.loads``) returns."""
    return _decode(text)


class Digester:
    """``chain_hash(prev_hash, event_hash_input(event))``, fast, self-checking."""

    def __init__(self) -> None:
        self._last_moment: datetime | None = None
        self._last_text = ""
        self._until_check = 0
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
        if self._until_check == 0:
            self._until_check = SELF_CHECK_EVERY
            defined = chain_hash(prev_hash, event_hash_input(event))
            if digest != defined:
                self.fast = False
                return defined
        self._until_check -= 1
        return digest
