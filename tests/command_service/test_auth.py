"""Invariant 9 through the live API: the tenant is the verified claim, another tenant's ids are
404 on every route (a session name is the caller's own stream, empty until it writes), and tokens
that do not verify are 401 problem+json."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from agentlane.auth import Authenticator
from agentlane.settings import Settings
from tests.command_service.conftest import (
    AUDIENCE,
    SECRET,
    LiveServer,
    bearer,
    make_token,
    serve,
)
from tests.fixtures.jwks_server import JwksServer, jwk, serve_jwks

A, B = bearer("tenant-a"), bearer("tenant-b")
PROBLEM = "application/problem+json"


async def test_every_route_is_404_on_another_tenants_ids(
    live: LiveServer, client: httpx.AsyncClient
) -> None:
    started = await client.post(
        "/agents/shared-name/runs", json={"runId": "r1", "message": "secret"}, headers=A
    )
    execution = started.json()["executionId"]
    # A tenant header is ignored: the token says tenant-b.
    b = {**B, "x-tenant-id": "tenant-a", "tenant": "tenant-a"}
    before = live.events_written()
    answers = [
        await client.get(f"/runs/{execution}", headers=b),
        await client.post(f"/runs/{execution}/cancel", headers=b),
        await client.post(f"/runs/{execution}/signals/approve", json={}, headers=b),
    ]
    for answer in answers:
        assert answer.status_code == 404, answer.request.url
        assert answer.headers["content-type"] == PROBLEM
        assert "secret" not in answer.text
    # The session name in tenant-b is tenant-b's own stream, still empty: nothing of tenant-a's.
    page = await client.get("/sessions/shared-name/events", headers=b)
    assert page.status_code == 200 and page.json() == {"events": [], "next": None}
    async with client.stream(
        "GET", "/sessions/shared-name/events",
        headers={**b, "accept": "text/event-stream", "last-event-id": "0"},
    ) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
    assert live.events_written() == before

    # The same runId and session name in tenant-b is tenant-b's own, separate run.
    own = await client.post(
        "/agents/shared-name/runs", json={"runId": "r1", "message": "mine"}, headers=B
    )
    assert own.status_code == 202 and own.json()["executionId"] != execution
    page = (await client.get("/sessions/shared-name/events", headers=B)).json()
    assert [e["tenantId"] for e in page["events"]] == ["tenant-b"]
    mine = (await client.get("/sessions/shared-name/events", headers=A)).json()
    assert [e["data"]["message"] for e in mine["events"]] == ["secret"]


def _tokens_that_must_fail() -> dict[str, str]:
    now = int(time.time())
    good = {"tenant": "tenant-a", "aud": AUDIENCE, "exp": now + 300}
    return {
        "expired": jwt.encode({**good, "exp": now - 600}, SECRET, algorithm="HS256"),
        "wrong signature": jwt.encode(good, "another-secret-of-32-bytes-or-more!", "HS256"),
        "wrong audience": jwt.encode({**good, "aud": "someone-else"}, SECRET, algorithm="HS256"),
        "alg none": jwt.encode(good, None, algorithm="none"),
        "no exp": jwt.encode({"tenant": "tenant-a", "aud": AUDIENCE}, SECRET, algorithm="HS256"),
        "no tenant claim": jwt.encode({**good, "tenant": None}, SECRET, algorithm="HS256"),
        "HS512": jwt.encode(good, SECRET * 2, algorithm="HS512"),
        "garbage": "not.a.token",
    }


async def test_tokens_that_do_not_verify_are_401(
    live: LiveServer, client: httpx.AsyncClient
) -> None:
    for name, token in _tokens_that_must_fail().items():
        response = await client.post(
            "/agents/s1/runs",
            json={"runId": "r1", "message": "m"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 401, name
        assert response.headers["content-type"] == PROBLEM
        assert response.headers["www-authenticate"] == "Bearer"
    missing = await client.get("/runs/ex_1")
    assert missing.status_code == 401
    assert live.events_written() == 0
    # Clock skew: a token that expired a few seconds ago still passes.
    skewed = make_token("tenant-a", ttl_s=-5)
    ok = await client.post(
        "/agents/s1/runs", json={"runId": "r1", "message": "m"},
        headers={"Authorization": f"Bearer {skewed}"},
    )
    assert ok.status_code == 202


@pytest.fixture
def jwks() -> Iterator[tuple[str, rsa.RSAPrivateKey, JwksServer]]:
    """A JWKS endpoint on loopback serving one key, ``k1``."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with serve_jwks() as server:
        server.keys = [jwk(key, "k1")]
        yield server.url, key, server


async def test_rs256_tokens_verified_by_jwks(
    database_url: str, jwks: tuple[str, rsa.RSAPrivateKey, JwksServer]
) -> None:
    url, key, server = jwks
    issuer = "https://accounts.google.com"
    authenticator = Authenticator(mode="jwt", jwks_url=url, audience=AUDIENCE, issuer=issuer)
    now = int(time.time())
    claims = {"tenant": "tenant-g", "aud": AUDIENCE, "iss": issuer, "exp": now + 300}
    good = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"})
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    bad = {
        "unknown signer": jwt.encode(claims, other_key, algorithm="RS256", headers={"kid": "k1"}),
        "unknown kid": jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k9"}),
        "wrong issuer": jwt.encode({**claims, "iss": "https://evil"}, key, algorithm="RS256",
                                   headers={"kid": "k1"}),
        "wrong audience": jwt.encode({**claims, "aud": "x"}, key, algorithm="RS256",
                                     headers={"kid": "k1"}),
        # The algorithm-confusion attack: HMAC keyed with the RSA public key.
        "HS256 with the public key": _hs256_with_raw_key(claims, public_pem),
    }
    async with (
        serve(database_url, authenticator=authenticator) as live,
        httpx.AsyncClient(base_url=live.base_url) as client,
    ):
        for _ in range(3):
            ok = await client.post(
                "/agents/s1/runs", json={"runId": "r1", "message": "m"},
                headers={"Authorization": f"Bearer {good}"},
            )
            assert ok.status_code == 202
        assert server.hits == 1  # keys are cached
        for name, token in bad.items():
            response = await client.get(
                f"/runs/{ok.json()['executionId']}", headers={"Authorization": f"Bearer {token}"}
            )
            assert response.status_code == 401, name
        assert live.count("SELECT count(*) FROM agent_events WHERE tenant_id = 'tenant-g'") == 1


def _hs256_with_raw_key(claims: dict[str, object], secret: bytes) -> str:
    import base64
    import hashlib
    import hmac

    def b64(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode())
    payload = b64(json.dumps(claims).encode())
    signature = b64(hmac.new(secret, header + b"." + payload, hashlib.sha256).digest())
    return (header + b"." + payload + b"." + signature).decode()


async def test_auth_none_is_tenant_default_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="agentlane.auth"):
        authenticator = Authenticator.from_settings(Settings.from_env({"AGENTLANE_AUTH": "none"}))
    assert "AUTHENTICATION IS OFF" in caplog.text
    assert await authenticator.tenant_for(None) == "default"
    assert await authenticator.tenant_for("anything") == "default"
