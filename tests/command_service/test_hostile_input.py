"""Input an attacker sends, through the live API: a lone surrogate anywhere in a body is 422 on a
connection that stays usable, never a 500; a tenant claim outside the tenant charset (a
look-alike, a lone surrogate) is 401; an HS256 secret too short to be a key refuses to start."""

from __future__ import annotations

import httpx
import pytest

from agentlane.auth import Authenticator
from agentlane.errors import ConfigError
from tests.command_service.conftest import LiveServer, bearer, make_token

A = bearer("tenant-a")
#: A JSON body spelled by hand: ``\\ud800`` is valid JSON syntax, and not Unicode text.
LONE = '"note \\ud800 here"'


async def test_a_lone_surrogate_in_a_body_is_422_and_nothing_is_written(
    live: LiveServer, client: httpx.AsyncClient
) -> None:
    headers = {**A, "content-type": "application/json"}
    started = await client.post(
        "/agents/s1/runs", content=f'{{"runId": "r1", "message": {LONE}}}', headers=headers
    )
    assert started.status_code == 422, started.text
    assert started.json()["detail"] == "body.message: a lone surrogate is not Unicode text"
    assert live.events_written() == 0

    ok = await client.post("/agents/s1/runs", json={"runId": "r1", "message": "m"}, headers=A)
    assert ok.status_code == 202  # the same connection, still serving
    execution = ok.json()["executionId"]
    signal = await client.post(
        f"/runs/{execution}/signals/approve",
        content=f'{{"payload": {{"deep": [1, {{"x": {LONE}}}]}}}}', headers=headers,
    )
    assert signal.status_code == 422, signal.text
    assert "body.payload.deep.1.x" in signal.json()["detail"]
    # An emoji written as an escaped surrogate pair is text, and is accepted.
    pair = await client.post(
        f"/runs/{execution}/signals/approve", content='{"payload": "\\ud83d\\ude00"}',
        headers=headers,
    )
    assert pair.status_code == 202, pair.text
    assert live.events_written() == 2


@pytest.mark.parametrize("tenant", ["t1\u200b", "t1\ud800", "a b", "x" * 129, ""])
async def test_a_tenant_claim_outside_the_charset_is_401(
    client: httpx.AsyncClient, tenant: str
) -> None:
    token = make_token(tenant)
    answer = await client.get("/runs/ex_none", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 401, answer.text


def test_an_hs256_secret_shorter_than_32_bytes_refuses_to_start() -> None:
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        Authenticator(mode="jwt", secret="short-secret")
    Authenticator(mode="jwt", secret="x" * 32)
