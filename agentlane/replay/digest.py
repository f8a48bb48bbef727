"""The chain hash of a stored row, computed the fast way for ``replay verify``.

The definition is :func:`agentlane.hashchain.chain_hash` over
:func:`agentlane.store.event_hash_input`, with the payload as the store reads it back (psycopg's
jsonb loader, ``json.loads``). Verify computes the same bytes with a fraction of the work per row:

- the payload text is parsed, and the hash input written, by orjson (``OPT_SORT_KEYS``: sorted
  keys, no whitespace, UTF-8, characters unescaped, as ``canonical_json``);
- ``createdAt`` is formatted once per distinct timestamp (a transaction's events share one),
  by ``isoformat`` (``format_timestamp``'s ``strftime`` spelling, for years from 1000);
- the hash-input dict is built directly instead of from ``to_json()`` minus ``eventId``.

orjson and ``json`` differ on a few values jsonb can hold: orjson spells some floats in exponent
form differently (``1e16``, not ``1e+16``) and refuses integers beyond 64 bits. Such a row's fast
hash does not match the stored one, or orjson raises; either way :meth:`Digester.verify` then
decodes and hashes that row by the definition, and the event it returns (the one the folds see)
is the definition's. A match needs the fast bytes to be exactly the bytes the writer hashed, and
those only come from data equal to the definition's, so the fast path never changes a verdict or
a fold; it costs speed on rows it cannot spell. :class:`Digester` also compares itself with the
definition on the first row, every ``SELF_CHECK_EVERY``-th after it and every row it could not
vouch for; from the first one that shows the definition changed (the event's fields without its
data hash differently, say a field was added to the Event JSON; or the fast hash matches where the
definition's does not) it hashes by the definition alone.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import orjson

from agentlane.db import load_json
from agentlane.events import format_timestamp
from agentlane.hashchain import chain_hash
from agentlane.records import StoredEvent
from agentlane.replay.rows import EventRow
from agentlane.store import event_hash_input

SELF_CHECK_EVERY = 1000

_SORTED = orjson.OPT_SORT_KEYS
_sha256 = hashlib.sha256
_dumps = orjson.dumps


def load_payload(text: str) -> Any:
    """A jsonb payload from its text, exactly as psycopg's jsonb loader (``json.loads``) gives
    it."""
    return json.loads(text)


def rfc3339(moment: datetime) -> str:
    """:func:`agentlane.events.format_timestamp`, several times faster."""
    utc = moment.astimezone(UTC)
    if utc.year < 1000:
        return format_timestamp(moment)
    return utc.isoformat(timespec="microseconds")[:-6] + "Z"


def fast_digest(
    prev_hash: bytes, event: StoredEvent | EventRow, created_at: str
) -> bytes | None:
    """The chain hash with orjson writing the hash input (``created_at`` is the event's
    ``createdAt`` text), or ``None`` where orjson cannot write the data."""
    body = {
        "seq": event.seq,
        "tenantId": event.tenant_id,
        "sessionId": event.session_id,
        "executionId": event.execution_id,
        "type": event.type,
        "data": event.data,
        "createdAt": created_at,
    }
    try:
        return _sha256(prev_hash + _dumps(body, option=_SORTED)).digest()
    except TypeError:
        return None


#: A jsonb payload from its text by orjson; ``json.loads`` where orjson refuses the text. Equal
#: to :func:`load_payload` whenever :meth:`Digester.verify` accepts the row's hash.
fast_payload = load_json


class Digester:
    """Checks stored hashes against ``chain_hash(prev_hash, event_hash_input(event))``, fast,
    self-checking."""

    def __init__(self) -> None:
        self._last_moment: datetime | None = None
        self._last_text = ""
        self._until_check = 0
        self.fast = True

    def timestamp(self, moment: datetime) -> str:
        if moment != self._last_moment:
            self._last_moment = moment
            self._last_text = rfc3339(moment)
        return self._last_text

    def verify(
        self, prev_hash: bytes, event: EventRow, stored: bytes, payload: str
    ) -> tuple[bool, EventRow]:
        """Whether ``stored`` is the chain hash of the row ``event`` was read from (its payload
        text ``payload``, decoded by :func:`fast_payload`), and the event as the definition reads
        it (``event`` itself when the fast hash vouches for it)."""
        digest = None
        if self.fast:
            digest = fast_digest(prev_hash, event, self.timestamp(event.created_at))
            if digest == stored and self._until_check > 0:
                self._until_check -= 1
                return True, event
        self._until_check = SELF_CHECK_EVERY
        defined = event._replace(data=load_payload(payload))
        intact = chain_hash(prev_hash, event_hash_input(defined.stored())) == stored
        if self.fast and ((digest == stored and not intact) or self._drifted(prev_hash, event)):
            # The definition has changed (say a new field in the Event JSON): only it decides
            # from here on.
            self.fast = False
        return intact, defined

    def _drifted(self, prev_hash: bytes, event: EventRow) -> bool:
        """Whether the fast path spells an event's fields other than its data (where orjson may
        spell a number differently) unlike the definition."""
        bare = event._replace(data=None)
        fast = fast_digest(prev_hash, bare, self.timestamp(bare.created_at))
        return fast != chain_hash(prev_hash, event_hash_input(bare.stored()))
