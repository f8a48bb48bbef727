"""Canonical bytes of an event and the per-stream hash chain that lets an auditor prove that no
stored event was edited, removed or reordered."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

GENESIS_HASH = bytes(32)


def canonical_json(value: Any) -> bytes:
    """Deterministic JSON bytes: sorted keys, no whitespace, UTF-8.

    Event data is normalised before it is stored (:func:`storable_number`), so the data an
    auditor reads back from jsonb produces the same bytes as the data that was written.
    """
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def storable_number(value: float) -> float | int:
    """The number jsonb will give back for ``value``.

    jsonb keeps numbers as ``numeric`` parsed from their shortest decimal text: ``1e+20`` comes
    back as the integer 100000000000000000000, and ``4.826214249164358e+16`` as 48262142491643580
    (not the float's binary value ...584), and ``-0.0`` as ``0.0``. Those floats therefore become
    what jsonb will return before they are stored and hashed; every other float survives as is.
    """
    if value == 0.0:
        return 0.0  # numeric has no negative zero: -0.0 comes back as 0.0
    text = repr(value)
    if "e" in text and value.is_integer():
        return int(Decimal(text))
    return value


def chain_hash(prev_hash: bytes, event_json: dict[str, Any]) -> bytes:
    """``sha256(prev_hash || canonical_json(event))`` over the full Event JSON."""
    digest = hashlib.sha256(prev_hash)
    digest.update(canonical_json(event_json))
    return digest.digest()


@dataclass(frozen=True, slots=True)
class ChainRow:
    """What the chain check needs of one stored event, in ``seq`` order of its stream."""

    event_id: int
    seq: int
    body: dict[str, Any]
    prev_hash: bytes
    hash: bytes


@dataclass(frozen=True, slots=True)
class ChainBreak:
    """One place where a stream's stored history disagrees with its hash chain."""

    event_id: int
    seq: int
    problem: str


class ChainChecker:
    """Check one stream, row by row, in constant memory (feed rows in ``seq`` order)."""

    def __init__(self) -> None:
        self._expected_prev = GENESIS_HASH
        self._expected_seq = 1
        self._last_event_id = 0

    def feed(self, row: ChainRow) -> list[ChainBreak]:
        problems = []
        if row.seq != self._expected_seq:
            problems.append(
                ChainBreak(row.event_id, row.seq, f"seq {row.seq}, expected {self._expected_seq}")
            )
        if row.event_id <= self._last_event_id:
            problems.append(ChainBreak(row.event_id, row.seq, "event_id does not grow with seq"))
        if row.prev_hash != self._expected_prev:
            problems.append(
                ChainBreak(row.event_id, row.seq, "prev_hash does not match the previous event")
            )
        recomputed = chain_hash(row.prev_hash, row.body)
        if recomputed != row.hash:
            problems.append(
                ChainBreak(row.event_id, row.seq, "hash does not match the event's content")
            )
        self._expected_prev = row.hash
        self._expected_seq = row.seq + 1
        self._last_event_id = row.event_id
        return problems

    @property
    def last_hash(self) -> bytes:
        return self._expected_prev

    @property
    def last_seq(self) -> int:
        return self._expected_seq - 1
