"""The keys RS256 tokens are verified with: a JWKS (Google's certs URL in production), fetched
asynchronously and shared.

What PyJWT's client did and this does not: keep a key by its id after the JWKS dropped it (a
revoked key stayed good), fetch under one lock per verification (four concurrent requests behind
a slow JWKS took 5, 10, 15 and 20 s), fetch again on every request while the JWKS fails, and read
a JWKS of any size. Here the key set lives ``lifetime_s`` and then only a fresh fetch counts; one
fetch at a time serves every waiter; a failure is not retried for a growing while (requests in
between are answered "unavailable" at once); a body over ``max_bytes`` is a failure; and a token
naming a key id we do not know fetches again at most every ``unknown_kid_every_s`` (a rotation
may have added it; made-up ids cannot hammer the endpoint).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import httpx
import jwt

from agentlane.backoff import Backoff

logger = logging.getLogger(__name__)


class JwksUnavailable(Exception):
    """The key set cannot be had right now (fetch failed, or backing off after a failure)."""


class JwksKeys:
    """Key id -> key of one JWKS URL; :meth:`key` is what a verification awaits."""

    def __init__(
        self,
        url: str,
        *,
        lifetime_s: float = 300.0,
        timeout_s: float = 5.0,
        max_bytes: int = 1 << 20,
        unknown_kid_every_s: float = 30.0,
    ) -> None:
        self.url = url
        self.lifetime_s = lifetime_s
        self.timeout_s = timeout_s
        self.max_bytes = max_bytes
        self.unknown_kid_every_s = unknown_kid_every_s
        self._keys: dict[str, Any] = {}
        self._fetched_at = -float("inf")
        self._retry_at = -float("inf")
        self._backoff = Backoff(initial_s=1.0, maximum_s=30.0)
        self._fetching: asyncio.Task[None] | None = None
        #: Fetches made (for tests and metrics).
        self.fetches = 0

    async def key(self, kid: str | None) -> Any | None:
        """The key ``kid`` names (None: the JWKS has no such key); JwksUnavailable when the set
        cannot be had."""
        now = time.monotonic()
        if now - self._fetched_at >= self.lifetime_s:
            await self._refresh()
        elif kid not in self._keys and now - self._fetched_at >= self.unknown_kid_every_s:
            await self._refresh()
        return self._keys.get(kid) if kid is not None else None

    async def _refresh(self) -> None:
        if time.monotonic() < self._retry_at:
            raise JwksUnavailable("backing off after a failed JWKS fetch")
        if self._fetching is None:
            self._fetching = asyncio.create_task(self._fetch(), name="jwks-fetch")
            self._fetching.add_done_callback(self._fetched)
        # Shielded: a request that gives up does not cancel the fetch others wait on.
        await asyncio.shield(self._fetching)

    def _fetched(self, task: asyncio.Task[None]) -> None:
        self._fetching = None
        if not task.cancelled():
            task.exception()  # retrieved here: the waiters have it too

    async def _fetch(self) -> None:
        self.fetches += 1
        try:
            body = await self._download()
            keys = {
                key.key_id: key for key in jwt.PyJWKSet.from_dict(json.loads(body)).keys
                if key.key_id is not None
            }
        except (httpx.HTTPError, ValueError, jwt.PyJWKSetError, JwksUnavailable) as exc:
            delay = max(1.0, self._backoff.next_delay())
            self._retry_at = time.monotonic() + delay
            # Past its lifetime the old set proves nothing: a key the JWKS dropped stays dropped.
            if time.monotonic() - self._fetched_at >= self.lifetime_s:
                self._keys = {}
            logger.warning("JWKS fetch failed (%s); next try in %.0fs", exc, delay)
            raise JwksUnavailable(str(exc)) from exc
        self._keys = keys
        self._fetched_at = time.monotonic()
        self._backoff.reset()

    async def _download(self) -> bytes:
        async with httpx.AsyncClient(timeout=self.timeout_s) as client:
            async with client.stream("GET", self.url) as response:
                response.raise_for_status()
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise JwksUnavailable(f"the JWKS is larger than {self.max_bytes} bytes")
                    chunks.append(chunk)
        return b"".join(chunks)
