"""``GET /ops/overview`` on the live API: the cluster as of one snapshot (runners and their leases,
due work per shard, projector lag, runs by status, every tenant's usage), for operators only: a
tenant's token is refused with 403, an operator's (``AGENTLANE_OPERATOR_CLAIM``) is answered, and
with ``AGENTLANE_AUTH=none`` (dev) it is open. Served as the app role, as in production."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest

from agentlane.auth import Authenticator, Forbidden, Unauthorized
from agentlane.db import open_database
from agentlane.errors import ConfigError
from agentlane.leases import SHARD_LEASES, Leases
from agentlane.readmodels import apply_events
from command_service.models import OpsOverview
from runners.membership import Membership, RunnerIdentity
from tests.command_service.conftest import (
    AUDIENCE,
    SECRET,
    LiveServer,
    bearer,
    jwt_authenticator,
    make_token,
    serve,
)
from tests.conftest import TEST_SHARDS, as_app
from tests.projector.workload import run_events


def operator(tenant: str | None = None, **claims: Any) -> dict[str, str]:
    token = make_token(tenant or "ops", agentlane_operator=True, **claims)
    return {"Authorization": f"Bearer {token}"}


async def _seed(live: LiveServer) -> int:
    """Two tenants' finished runs (projected into the read models, the checkpoint left where it
    is), one runner holding four shards, and a run accepted over the API, not yet started.
    Returns how many events were written."""
    written = 0
    for tenant, execution, tokens in (("tenant-a", "ex-a1", 2), ("tenant-b", "ex-b1", 4)):
        for chunk in run_events(tenant, "s1", execution, tokens):
            written += len(await live.store.append_batch(chunk))
    async with open_database(live.database_url, name="test", min_size=1, max_size=1) as db:
        async with db.transaction() as conn:
            for tenant in ("tenant-a", "tenant-b"):
                await apply_events(conn, live.store, await live.store.read_session(tenant, "s1"))
        identity = RunnerIdentity.fresh("runner-a")
        await Membership(db, identity, ttl_s=30, address="").register()
        held = await Leases(db, SHARD_LEASES, holder=identity.runner_id, ttl_s=30).claim(4)
        assert len(held) == 4
    async with httpx.AsyncClient(base_url=live.base_url) as client:
        started = await client.post(
            "/agents/s2/runs", json={"runId": "r1", "message": "m"}, headers=bearer("tenant-a")
        )
        assert started.status_code == 202
    return written + 1


async def test_an_operator_sees_the_cluster_and_a_tenant_is_refused(database_url: str) -> None:
    async with serve(as_app(database_url), authenticator=jwt_authenticator()) as live:
        live.database_url = database_url  # the test's own setup writes as the owner
        written = await _seed(live)
        async with httpx.AsyncClient(base_url=live.base_url, timeout=30) as client:
            refused = await client.get("/ops/overview", headers=bearer("tenant-a"))
            assert refused.status_code == 403
            assert refused.headers["content-type"] == "application/problem+json"
            assert refused.json()["type"] == "https://agentlane.dev/problems/forbidden"
            assert "agentlane_operator" in refused.json()["detail"]
            assert (await client.get("/ops/overview")).status_code == 401
            # A claim that is there but not true is no operator's.
            fake = make_token("tenant-a", agentlane_operator="yes")
            answer = await client.get(
                "/ops/overview", headers={"Authorization": f"Bearer {fake}"}
            )
            assert answer.status_code == 403

            answer = await client.get("/ops/overview", headers=operator())
            assert answer.status_code == 200, answer.text
            body = answer.json()
            too_many = await client.get(
                "/ops/overview", params={"days": 91}, headers=operator()
            )
            assert too_many.status_code == 422
            assert "query.days" in too_many.json()["detail"]

    OpsOverview.model_validate(body)  # what the OpenAPI document promises
    at = datetime.fromisoformat(body["at"])
    assert abs(at - datetime.now(UTC)) < timedelta(seconds=30)

    [runner] = body["runners"]
    assert runner["runnerId"].startswith("runner-a/")
    assert runner["shards"] == [0, 1, 2, 3] and not runner["draining"]
    assert 0 <= runner["heartbeatAgeS"] < 30 and 25 < runner["leaseExpiresInS"] <= 30
    shards = body["shards"]
    assert (shards["count"], shards["held"], shards["listed"]) == (TEST_SHARDS, 4, "all")
    assert [row["shard"] for row in shards["rows"]] == list(range(TEST_SHARDS))
    held = [row for row in shards["rows"] if row["runnerId"] == runner["runnerId"]]
    assert [row["shard"] for row in held] == [0, 1, 2, 3]
    assert all(row["leaseToken"] >= 1 and row["heldForS"] < 30 for row in held)
    # The accepted run is due on its shard, whoever holds it.
    [due] = [row for row in shards["rows"] if row["dueRuns"]]
    assert due["dueRuns"] == 1 and due["oldestDueAgeS"] >= 0

    assert body["runs"]["active"] == {"queued": 1, "running": 0, "suspended": 0}
    ended = body["runs"]["ended"]
    assert (ended["completed"], ended["failed"], ended["cancelled"]) == (2, 0, 0)
    assert ended["windowS"] == 60 and not ended["sampled"]

    # Nothing moved the read models' checkpoint: every event is lag.
    [checkpoint] = body["projector"]["checkpoints"]
    assert checkpoint["name"] == "read_models"
    assert checkpoint["lagEvents"] == written and not checkpoint["lagEventsCapped"]
    assert checkpoint["lagS"] > 0
    assert body["projector"]["horizonAgeS"] >= 0

    usage = body["usage"]
    today = datetime.now(UTC).date()
    assert usage["since"] == (today - timedelta(days=13)).isoformat()
    assert not usage["truncated"]
    # Both tenants, the costlier first (each run costs 7 + 3 x tokens millionths).
    assert [(d["tenant"], d["costMicros"], d["calls"]) for d in usage["days"]] == [
        ("tenant-b", 19, 1), ("tenant-a", 13, 1)
    ]
    assert {d["day"] for d in usage["days"]} == {today.isoformat()}


async def test_without_auth_the_overview_is_open(database_url: str) -> None:
    async with serve(database_url, authenticator=Authenticator(mode="none")) as live:
        async with httpx.AsyncClient(base_url=live.base_url, timeout=30) as client:
            answer = await client.get("/ops/overview", params={"days": 1})
    assert answer.status_code == 200
    body = answer.json()
    assert body["runners"] == [] and body["shards"]["held"] == 0
    assert body["usage"] == {"since": datetime.now(UTC).date().isoformat(), "days": [],
                             "truncated": False}


@pytest.mark.parametrize(
    ("setting", "claims", "allowed"),
    [
        ("agentlane_operator", {"agentlane_operator": True}, True),
        ("agentlane_operator", {"agentlane_operator": "true"}, False),
        ("agentlane_operator", {}, False),
        ("roles=ops", {"roles": ["viewer", "ops"]}, True),
        ("roles=ops", {"roles": ["viewer"]}, False),
        ("scope=agentlane:ops", {"scope": "openid agentlane:ops"}, True),
        ("scope=agentlane:ops", {"scope": "openid agentlane:opsx"}, False),
        ("email=oncall@example.com", {"email": "oncall@example.com"}, True),
        ("email=oncall@example.com", {"email": "someone@example.com"}, False),
    ],
)
async def test_the_operator_claim_setting(
    setting: str, claims: dict[str, Any], allowed: bool
) -> None:
    auth = Authenticator(mode="jwt", secret=SECRET, audience=AUDIENCE, operator_claim=setting)
    token = make_token("tenant-a", **claims)
    if allowed:
        assert await auth.operator(token) == "tenant-a"
        # An operator's token needs no tenant: its requests are counted as "operator".
        untenanted = jwt.encode(
            {"aud": AUDIENCE, "exp": int(time.time()) + 60, **claims}, SECRET, algorithm="HS256"
        )
        assert await auth.operator(untenanted) == "operator"
    else:
        with pytest.raises(Forbidden):
            await auth.operator(token)
    with pytest.raises(Unauthorized):
        await auth.operator(None)


def test_a_bad_operator_claim_setting_stops_the_process() -> None:
    from agentlane.settings import Settings

    for bad in ("", "=x", "a b", "roles="):
        with pytest.raises(ConfigError, match="AGENTLANE_OPERATOR_CLAIM"):
            Settings.from_env({"AGENTLANE_OPERATOR_CLAIM": bad})
    assert Settings.from_env({}).operator_claim == "agentlane_operator"
