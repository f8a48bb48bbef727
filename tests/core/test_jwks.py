"""The JWKS behind RS256 tokens, against a real HTTP server that can be slow, fail, grow huge or
drop a key: one fetch serves concurrent verifications, a dropped key stops verifying once the set
is refreshed, a failing JWKS is not fetched on every request, and a huge one is not read."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from agentlane.auth import Authenticator, AuthUnavailable, Unauthorized
from agentlane.jwks import JwksKeys, JwksUnavailable

AUDIENCE = "agentlane-tests"


@dataclass
class JwksServer:
    url: str = ""
    keys: list[dict[str, Any]] = field(default_factory=list)
    delay_s: float = 0.0
    status: int = 200
    padding: int = 0
    hits: int = 0


def _jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return {**public, "kid": kid, "use": "sig", "alg": "RS256"}


@pytest.fixture
def server() -> Iterator[JwksServer]:
    state = JwksServer()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.hits += 1
            time.sleep(state.delay_s)
            body = json.dumps({"keys": state.keys, "pad": "x" * state.padding}).encode()
            self.send_response(state.status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    state.url = f"http://127.0.0.1:{http.server_port}/certs"
    try:
        yield state
    finally:
        http.shutdown()
        http.server_close()


@pytest.fixture(scope="module")
def signer() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _token(key: rsa.RSAPrivateKey, kid: str = "k1") -> str:
    claims = {"tenant": "acme", "aud": AUDIENCE, "exp": int(time.time()) + 300}
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


async def test_concurrent_verifications_share_one_fetch(
    server: JwksServer, signer: rsa.RSAPrivateKey
) -> None:
    server.keys, server.delay_s = [_jwk(signer, "k1")], 0.5
    auth = Authenticator(mode="jwt", jwks_url=server.url, audience=AUDIENCE)
    tenants = await asyncio.gather(*(auth.tenant_for(_token(signer)) for _ in range(4)))
    assert tenants == ["acme"] * 4
    assert server.hits == 1


async def test_a_key_dropped_from_the_jwks_stops_verifying_after_the_lifetime(
    server: JwksServer, signer: rsa.RSAPrivateKey
) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    server.keys = [_jwk(signer, "k1"), _jwk(other, "k2")]
    keys = JwksKeys(server.url, lifetime_s=0.3)
    assert await keys.key("k1") is not None
    server.keys = [_jwk(other, "k2")]  # k1 revoked
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
    server.keys = [_jwk(signer, "k1")]
    auth = Authenticator(mode="jwt", jwks_url=server.url, audience=AUDIENCE)
    for kid in ("k7", "k8", "k9"):
        with pytest.raises(Unauthorized):
            await auth.tenant_for(_token(signer, kid))
    assert server.hits == 1
