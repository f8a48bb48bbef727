"""Large values of events stored once in a blob store, the event holding their reference.

A value of one of the fields below whose canonical JSON is longer than the threshold is written to
the blob store under the SHA-256 of those bytes, and the event keeps ``<field>Ref`` =
``{"sha256", "size"}`` in its place (the field itself is ``null`` or absent). The reference is part
of the event's data, so the hash chain covers it, and a blob whose bytes do not hash to it is
refused on every read: the chain proves the content as if it were inline.

Model inputs are never recorded (a model call's input is rebuilt from the journal), so the one
copy of a large tool result, answer, message or signal payload is its blob.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import orjson

from agentlane.blobs.errors import BlobCorrupt
from agentlane.blobs.stores import BlobStore
from agentlane.events import validate_data
from agentlane.records import CheckedEvent, NewEvent, StoredEvent

#: Per event type, the data fields a blob may hold (camelCase, as stored).
OFFLOADED_FIELDS: Mapping[str, tuple[str, ...]] = {
    "RunAccepted": ("message",),
    "SignalReceived": ("payload",),
    "ToolResult": ("result",),
    "StepCompleted": ("result",),
    "Completed": ("answer",),
}
#: Values up to this many bytes of JSON stay in the event (``AGENTLANE_BLOB_THRESHOLD``).
DEFAULT_THRESHOLD = 32 * 1024
#: Bytes of blobs a process keeps in memory (a run's replays read its blobs again).
DEFAULT_CACHE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class BlobRef:
    sha256: str
    size: int

    def to_json(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "size": self.size}


def ref_key(field: str) -> str:
    return field + "Ref"


def encode(value: Any) -> bytes:
    """A value's blob bytes: compact UTF-8 JSON with sorted keys (one value, one blob)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # integers beyond 64 bits, which jsonb keeps
        return json.dumps(
            value, ensure_ascii=False, sort_keys=True, separators=(",", ":")
        ).encode()


def refs_in(event_type: str, data: Mapping[str, Any]) -> Iterator[tuple[str, BlobRef]]:
    """The ``(field, reference)`` pairs of an event's data."""
    for field in OFFLOADED_FIELDS.get(event_type, ()):
        ref = data.get(ref_key(field))
        if isinstance(ref, Mapping):
            yield field, BlobRef(str(ref["sha256"]), int(ref["size"]))


def has_refs(event: StoredEvent) -> bool:
    return any(True for _ in refs_in(event.type, event.data))


class Blobs:
    """Offloads large values of events on their way in and resolves references on their way
    out, with an in-memory cache of recent blobs (bounded in bytes)."""

    def __init__(
        self,
        store: BlobStore,
        *,
        threshold: int = DEFAULT_THRESHOLD,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
    ) -> None:
        self.store = store
        self.threshold = threshold
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._cache_bytes = cache_bytes
        self._cached = 0

    # --- in ----------------------------------------------------------------------------------

    async def offload(self, events: Sequence[NewEvent]) -> list[NewEvent]:
        """``events`` with every large value written to the store and replaced by its reference
        (validated, so the store does not validate them again). Returns only once every blob is
        durable: the events may then commit."""
        out: list[NewEvent] = []
        for event in events:
            fields = OFFLOADED_FIELDS.get(event.type)
            if not fields or not any(self._may_be_large(event.data.get(f)) for f in fields):
                out.append(event)
                continue
            data = event.data if type(event) is CheckedEvent else validate_data(
                event.type, event.data
            )
            changed, offloaded = dict(data), False
            for field in fields:
                value = changed.get(field)
                if value is None or not self._may_be_large(value):
                    continue
                content = encode(value)
                if len(content) <= self.threshold:
                    continue
                ref = BlobRef(hashlib.sha256(content).hexdigest(), len(content))
                await self.store.put(ref.sha256, content)
                self._remember(ref.sha256, content)
                changed[field] = None
                changed[ref_key(field)] = ref.to_json()
                offloaded = True
            out.append(CheckedEvent(
                event.tenant_id, event.session_id, event.type,
                validate_data(event.type, changed) if offloaded else data,
                event.execution_id, event.idempotency_key, event.trace,
            ))
        return out

    def _may_be_large(self, value: Any) -> bool:
        if value is None or isinstance(value, bool | int | float):
            return False
        if isinstance(value, str):
            return len(value) * 4 + 2 > self.threshold  # at most 4 bytes a character
        return True

    # --- out ---------------------------------------------------------------------------------

    async def read(self, ref: BlobRef) -> bytes:
        """The blob's bytes, checked against the reference (:class:`BlobCorrupt` otherwise)."""
        content = self._cache.get(ref.sha256)
        if content is not None:
            self._cache.move_to_end(ref.sha256)
        else:
            content = await self.store.get(ref.sha256)
            check(ref, content)
            self._remember(ref.sha256, content)
        return content

    async def value(self, ref: BlobRef) -> Any:
        return orjson.loads(await self.read(ref))

    async def resolve(self, events: Iterable[StoredEvent]) -> list[StoredEvent]:
        """``events`` with every reference replaced by its value (the ``…Ref`` field dropped)."""
        out = []
        for event in events:
            refs = list(refs_in(event.type, event.data))
            if not refs:
                out.append(event)
                continue
            data = dict(event.data)
            for field, ref in refs:
                data[field] = await self.value(ref)
                del data[ref_key(field)]
            out.append(replace(event, data=data))
        return out

    def _remember(self, sha256: str, content: bytes) -> None:
        if len(content) > self._cache_bytes // 4 or sha256 in self._cache:
            return
        self._cache[sha256] = content
        self._cached += len(content)
        while self._cached > self._cache_bytes:
            _, dropped = self._cache.popitem(last=False)
            self._cached -= len(dropped)


def check(ref: BlobRef, content: bytes) -> None:
    """:class:`BlobCorrupt` unless ``content`` is what ``ref`` names."""
    digest = hashlib.sha256(content).hexdigest()
    if digest != ref.sha256 or len(content) != ref.size:
        raise BlobCorrupt(
            f"blob {ref.sha256}: its bytes hash to {digest} ({len(content)} bytes, "
            f"the event says {ref.size})"
        )
