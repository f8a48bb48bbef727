"""The JWKS behind RS256 tokens, against a real HTTP server that can be slow, fail, grow huge or
drop a key: one fetch serves concurrent verifications, a dropped key stops verifying once the set
is refreshed, a failing JWKS is not fetched on every request, and a huge one is not read."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from agentlane.auth import Authenticator, AuthUnavailable, Unauthorized
from agentlane.jwks import JwksKeys, JwksUnavailable
from tests.fixtures.jwks_server import JwksServer, jwk, serve_jwks

AUDIENCE = "agentlane-tests"


@pytest.fixture
def server() -> Iterator[JwksServer]:
    with serve_jwks() as state:
        yield state


@pytest.fixture(scope="module")
def signer() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _token(key: rsa.RSAPrivateKey, kid: str = "k1") -> str:
    claims = {"tenant": "acme", "aud": AUDIENCE, "exp": int(time.time()) + 300}
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


async def test_concurrent_verifications_share_one_fetch(
    server: JwksServer, signer: rsa.RSAPrivateKey
) -> None:
    server.keys, server.delay_s = [jwk(signer, "k1")], 0.5
    auth = Authenticator(mode="jwt", jwks_url=server.url, audience=AUDIENCE)
    tenants = await asyncio.gather(*(auth.tenant_for(_token(signer)) for _ in range(4)))
    assert tenants == ["acme"] * 4
    assert server.hits == 1


async def test_a_key_dropped_from_the_jwks_stops_verifying_after_the_lifetime(
    server: JwksServer, signer: rsa.RSAPrivateKey
) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    server.keys = [jwk(signer, "k1"), jwk(other, "k2")]
    keys = JwksKeys(server.url, lifetime_s=0.3)
    assert await keys.key("k1") is not None
    server.keys = [jwk(other, "k2")]  # k1 revoked
    assert await keys.key("k1") is not None  # within the lifetime: the set as fetched
    await asyncio.sleep(0.4)
    assert await keys.key("k1") is None and await keys.key("k2") is not None
    assert server.hits == 2


async def test_a_failing_jwks_is_not_fetched_on_every_request(
    server: JwksServer, signer: rsa.RSAPrivateKey
) -> None:
    server.status = 500
    auth = Authenticator(mode="jwt", jwks_url=server.url, audience=AUDIENCE)
    for _ in range(5):
        with pytest.raises(AuthUnavailable):
            await auth.tenant_for(_token(signer))
    assert server.hits == 1


async def test_a_huge_jwks_is_refused_not_parsed(server: JwksServer) -> None:
    server.padding = 4 << 20
    keys = JwksKeys(server.url, max_bytes=1 << 20)
    with pytest.raises(JwksUnavailable, match="larger than"):
        await keys.key("k1")


async def test_made_up_key_ids_fetch_again_at_most_once_a_while(
    server: JwksServer, signer: rsa.RSAPrivateKey
) -> None:
    server.keys = [jwk(signer, "k1")]
    auth = Authenticator(mode="jwt", jwks_url=server.url, audience=AUDIENCE)
    for kid in ("k7", "k8", "k9"):
        with pytest.raises(Unauthorized):
            await auth.tenant_for(_token(signer, kid))
    assert server.hits == 1
