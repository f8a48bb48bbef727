"""Settings from the environment of docs/contract.md, and the stable shard function."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentlane.errors import ConfigError
from agentlane.settings import CONTRACT_ENV_VARS, ENV_VARS, Settings
from agentlane.sharding import shard_for


def test_defaults_follow_the_contract() -> None:
    s = Settings.from_env({})
    assert (s.bus, s.topic, s.model, s.auth, s.tenant_claim) == (
        "postgres",
        "agent-events",
        "offline",
        "none",
        "tenant",
    )
    assert (s.shards, s.lease_ttl_s, s.port) == (64, 10.0, 8080)
    assert s.runner_identity


@pytest.mark.parametrize(
    ("env", "bus"),
    [
        ({"PUBSUB_EMULATOR_HOST": "127.0.0.1:8085"}, "pubsub"),
        ({"GOOGLE_CLOUD_PROJECT": "p"}, "pubsub"),
        ({"GOOGLE_CLOUD_PROJECT": "p", "AGENTLANE_BUS": "postgres"}, "postgres"),
    ],
)
def test_bus_default(env: dict[str, str], bus: str) -> None:
    assert Settings.from_env(env).bus == bus


def test_model_is_offline_only_without_an_endpoint() -> None:
    assert Settings.from_env({"OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}).model != "offline"
    assert Settings.from_env({"OPENAI_API_KEY": "sk-x", "AGENTLANE_MODEL": "m"}).model == "m"


def test_pod_name_wins_over_runner_id() -> None:
    assert Settings.from_env({"POD_NAME": "runner-0"}).runner_identity == "runner-0"
    assert Settings.from_env({"AGENTLANE_RUNNER_ID": "r"}).runner_identity == "r"


@pytest.mark.parametrize(
    ("env", "field"),
    [
        ({"AGENTLANE_SHARDS": "zero"}, "AGENTLANE_SHARDS"),
        ({"AGENTLANE_SHARDS": "0"}, "AGENTLANE_SHARDS"),
        ({"AGENTLANE_BUS": "kafka"}, "AGENTLANE_BUS"),
        ({"AGENTLANE_AUTH": "basic"}, "AGENTLANE_AUTH"),
        ({"AGENTLANE_LEASE_TTL": "-1"}, "AGENTLANE_LEASE_TTL"),
        ({"PORT": "99999"}, "PORT"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        Settings.from_env(env)


def test_secrets_do_not_print() -> None:
    s = Settings.from_env({"DATABASE_URL": "postgresql://u:hunter2@h/d", "OPENAI_API_KEY": "sk-1"})
    assert "hunter2" not in repr(s) and "sk-1" not in repr(s)
    assert s.require_database_url().endswith("@h/d")


def test_every_contract_variable_is_read() -> None:
    assert CONTRACT_ENV_VARS <= ENV_VARS
    aliases = set()
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        aliases |= set(getattr(alias, "choices", [alias]))
    assert ENV_VARS == aliases


@given(st.text(max_size=30), st.text(max_size=30), st.integers(1, 4096))
def test_shard_is_stable_and_in_range(tenant: str, session: str, shards: int) -> None:
    shard = shard_for(tenant, session, shards)
    assert 0 <= shard < shards
    assert shard == shard_for(tenant, session, shards)


def test_shard_does_not_depend_on_the_process() -> None:
    """Python's hash() is salted per process; ours must not be."""
    code = "from agentlane.sharding import shard_for; print(shard_for('acme', 'session-1', 64))"
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            env={"PYTHONHASHSEED": str(seed)},
            check=True,
        ).stdout
        for seed in (1, 2, 3)
    }
    assert outputs == {f"{shard_for('acme', 'session-1', 64)}\n"}
