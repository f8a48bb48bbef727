"""Anchors: signed checkpoints of every stream head, kept outside the database.

The hash chain proves that a stream's events agree with each other; someone who can write the
table as its owner or a superuser can rewrite an event and recompute every hash after it, and the
chain agrees again. An anchor closes that: it records, at one instant, each stream's head (last
``seq``, its ``event_id`` and chain hash), signed with a key the database never sees. Because each
hash commits to every event before it in its stream, an anchored head whose hash still matches
proves the whole prefix up to it is unchanged; ``replay verify --anchor`` checks that for every
anchored stream and names each stream where it does not hold.

The file is NDJSON: a signed header line, then one line per stream head in (tenant, session)
order. The header carries ``headsDigest``, the SHA-256 of the head lines, so the signature over
the header covers the heads too. Keys: an Ed25519 private key (PEM; verify with its public key)
or an HMAC-SHA256 secret of at least 32 bytes (verify with the same secret).

What an anchor cannot prove: anything about events written after it (the next anchor covers
those), nor that history was intact when it was taken; run ``replay verify`` with the previous
anchor before trusting a new one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from agentlane.events import format_timestamp
from agentlane.hashchain import canonical_json
from agentlane.replay.errors import AnchorError
from agentlane.replay.verify import BATCH, Mismatch
from agentlane.store.audit import EventFilter, Snapshot, chain_heads, events_at, log_totals

FORMAT = "agentlane-anchor/1"
_HMAC_MIN_BYTES = 32


# --- keys ---------------------------------------------------------------------------------------


class Signer(Protocol):
    @property
    def algorithm(self) -> str: ...

    @property
    def key_id(self) -> str: ...

    def sign(self, message: bytes) -> bytes: ...


class Verifier(Protocol):
    @property
    def algorithm(self) -> str: ...

    @property
    def key_id(self) -> str: ...

    def verify(self, message: bytes, signature: bytes) -> bool: ...


@dataclass(frozen=True)
class Ed25519Key:
    """An Ed25519 public key, and its private half when this side signs."""

    public: Ed25519PublicKey
    private: Ed25519PrivateKey | None = None
    algorithm: str = "Ed25519"

    @property
    def key_id(self) -> str:
        raw = self.public.public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]

    def sign(self, message: bytes) -> bytes:
        if self.private is None:
            raise AnchorError("an Ed25519 public key cannot sign anchors")
        return self.private.sign(message)

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            self.public.verify(signature, message)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class HmacKey:
    """Signs and verifies: the holder of an HMAC secret can do both."""

    secret: bytes
    algorithm: str = "HMAC-SHA256"

    @property
    def key_id(self) -> str:
        # Names the key without revealing it (a MAC of a constant, not a hash of the secret).
        tag = hmac.new(self.secret, b"agentlane anchor key id", hashlib.sha256)
        return "hmac:" + tag.hexdigest()[:16]

    def sign(self, message: bytes) -> bytes:
        return hmac.new(self.secret, message, hashlib.sha256).digest()

    def verify(self, message: bytes, signature: bytes) -> bool:
        return hmac.compare_digest(self.sign(message), signature)


def _hmac_key(text: str) -> HmacKey:
    secret = text.strip().encode()
    if len(secret) < _HMAC_MIN_BYTES:
        raise AnchorError(
            f"an HMAC anchor key needs at least {_HMAC_MIN_BYTES} bytes "
            "(or use an Ed25519 key: openssl genpkey -algorithm ed25519)"
        )
    return HmacKey(secret)


def _pem(text: str) -> bytes | None:
    stripped = text.strip()
    return stripped.encode() if stripped.startswith("-----BEGIN") else None


def signer_from(text: str) -> Ed25519Key | HmacKey:
    """The signing key in ``text``: an Ed25519 private key (PEM) or an HMAC secret."""
    pem = _pem(text)
    if pem is None:
        return _hmac_key(text)
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise AnchorError(f"the anchor key is not a readable private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise AnchorError("the anchor key is not an Ed25519 key")
    return Ed25519Key(key.public_key(), key)


def verifier_from(text: str) -> Verifier:
    """The verify key in ``text``: an Ed25519 public (or private) key in PEM, or the HMAC
    secret."""
    pem = _pem(text)
    if pem is None:
        return _hmac_key(text)
    if b"PRIVATE KEY" in pem.split(b"\n", 1)[0]:
        return signer_from(text)
    try:
        public = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise AnchorError(f"the anchor verify key is not a readable public key: {exc}") from None
    if not isinstance(public, Ed25519PublicKey):
        raise AnchorError("the anchor verify key is not an Ed25519 key")
    return Ed25519Key(public)


# --- the anchor ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Head:
    """A stream's last event when the anchor was taken."""

    tenant_id: str
    session_id: str
    seq: int
    event_id: int
    hash: bytes

    def line(self) -> bytes:
        return canonical_json(
            [self.tenant_id, self.session_id, self.seq, self.event_id, self.hash.hex()]
        )


@dataclass(frozen=True, slots=True)
class Anchor:
    """A verified anchor file (signature and heads digest checked)."""

    source: str
    created_at: str
    events: int
    through_event_id: int
    key_id: str
    heads: list[Head]


def take(conn: Snapshot) -> tuple[list[Head], int, int]:
    """Every stream's head (read from the events), the event count and the highest event id."""
    heads = [Head(*row) for row in chain_heads(conn)]
    events, through = log_totals(conn)
    return heads, events, through


def _header_bytes(header: dict[str, Any]) -> bytes:
    return canonical_json({k: v for k, v in header.items() if k != "signature"})


def render(
    heads: Sequence[Head], events: int, through_event_id: int, signer: Signer,
    created_at: datetime,
) -> bytes:
    """The anchor file's bytes: the signed header line, then one line per head."""
    lines = [head.line() for head in heads]
    digest = hashlib.sha256()
    for line in lines:
        digest.update(line + b"\n")
    header: dict[str, Any] = {
        "format": FORMAT,
        "createdAt": format_timestamp(created_at),
        "events": events,
        "throughEventId": through_event_id,
        "streams": len(lines),
        "headsDigest": digest.hexdigest(),
        "algorithm": signer.algorithm,
        "keyId": signer.key_id,
    }
    header["signature"] = base64.b64encode(signer.sign(_header_bytes(header))).decode()
    return b"\n".join([canonical_json(header), *lines]) + b"\n"


def load(path: Path, verifier: Verifier) -> Anchor:
    """Read and check one anchor file; :class:`AnchorError` (one line) when it cannot be
    trusted."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise AnchorError(f"anchor {path}: {exc.strerror or exc}") from None
    first, _, rest = raw.partition(b"\n")
    try:
        header = json.loads(first)
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise ValueError
        signature = base64.b64decode(header["signature"], validate=True)
    except (ValueError, KeyError, TypeError):
        raise AnchorError(f"anchor {path}: not an {FORMAT} file") from None
    if header.get("keyId") != verifier.key_id or header.get("algorithm") != verifier.algorithm:
        raise AnchorError(
            f"anchor {path}: signed by key {header.get('keyId')!r}, "
            f"the verify key is {verifier.key_id!r}"
        )
    if not verifier.verify(_header_bytes(header), signature):
        raise AnchorError(f"anchor {path}: the signature does not match its header")
    if hashlib.sha256(rest).hexdigest() != header.get("headsDigest"):
        raise AnchorError(f"anchor {path}: the stream heads were changed after signing")
    heads = []
    for line in rest.splitlines():
        t, s, q, e, h = json.loads(line)
        heads.append(Head(t, s, q, e, bytes.fromhex(h)))
    if len(heads) != header.get("streams"):
        raise AnchorError(f"anchor {path}: says {header.get('streams')} streams, has {len(heads)}")
    return Anchor(
        str(path), str(header["createdAt"]), int(header["events"]),
        int(header["throughEventId"]), str(header["keyId"]), heads,
    )


def check(conn: Snapshot, anchor: Anchor, where: EventFilter) -> Iterator[Mismatch]:
    """Every anchored stream (of ``where``'s tenant) whose history up to its anchored head is not
    what the anchor recorded."""
    heads = [
        h for h in anchor.heads if where.tenant_id is None or h.tenant_id == where.tenant_id
    ]
    when = f"the anchor of {anchor.created_at}"
    for start in range(0, len(heads), BATCH):
        batch = heads[start:start + BATCH]
        now = events_at(conn, [(h.tenant_id, h.session_id, h.seq) for h in batch])
        for head, found in zip(batch, now, strict=True):
            if found is None:
                what = f"history before {when} was removed: seq {head.seq} is gone"
                yield Mismatch(head.tenant_id, head.session_id, what, head.seq, head.event_id)
                continue
            event_id, digest = found
            if digest != head.hash:
                what = (
                    f"history before {when} changed: the chain hash at seq {head.seq} is "
                    f"{digest.hex()[:16]}…, the anchor says {head.hash.hex()[:16]}…"
                )
                yield Mismatch(head.tenant_id, head.session_id, what, head.seq, event_id)
            elif event_id != head.event_id:
                what = (
                    f"history before {when} was renumbered: seq {head.seq} is event "
                    f"{event_id}, the anchor says {head.event_id}"
                )
                yield Mismatch(head.tenant_id, head.session_id, what, head.seq, event_id)
