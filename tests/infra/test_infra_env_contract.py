"""The environment each workload receives uses only docs/contract.md's variable names."""

from __future__ import annotations

import importlib
import importlib.util

import pytest

from infra.components import workload_env
from infra.components.names import ANCHOR, COMMAND_SERVICE, GATEWAY, MIGRATE, PROJECTOR, RUNNER
from tests.infra.infra_resources import StackRun

# A copy of docs/contract.md's environment table, kept as a second check beside
# agentlane.settings.ENV_VARS: a name added here without the contract is a review question.
CONTRACT_ENV_TABLE = frozenset(
    {
        "DATABASE_URL",
        "AGENTLANE_BUS",
        "GOOGLE_CLOUD_PROJECT",
        "PUBSUB_EMULATOR_HOST",
        "AGENTLANE_TOPIC",
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "AGENTLANE_MODEL",
        "AGENTLANE_AUTH",
        "AGENTLANE_JWT_SECRET",
        "AGENTLANE_JWT_JWKS_URL",
        "AGENTLANE_JWT_AUDIENCE",
        "AGENTLANE_JWT_ISSUER",
        "AGENTLANE_TENANT_CLAIM",
        "AGENTLANE_OPERATOR_CLAIM",
        "AGENTLANE_SHARDS",
        "AGENTLANE_LEASE_TTL",
        "POD_NAME",
        "AGENTLANE_RUNNER_ID",
        "PORT",
    }
)
# What each workload must be told in a cloud deployment (beyond that, defaults apply).
REQUIRED = {
    COMMAND_SERVICE.component: {"DATABASE_URL", "AGENTLANE_BUS", "AGENTLANE_AUTH"},
    GATEWAY.component: {"DATABASE_URL", "AGENTLANE_BUS", "AGENTLANE_AUTH", "PORT"},
    RUNNER.component: {"DATABASE_URL", "POD_NAME", "OPENAI_API_KEY_FILE", "AGENTLANE_MODEL",
                       "AGENTLANE_CODE_VERSION"},
    PROJECTOR.component: {"DATABASE_URL", "AGENTLANE_BUS", "AGENTLANE_TOPIC"},
    MIGRATE.component: {"DATABASE_URL", "AGENTLANE_SHARDS"},
    ANCHOR.component: {"DATABASE_URL", "AGENTLANE_DB_IAM_AUTH", "AGENTLANE_ANCHOR_KEY"},
}


def _given(run: StackRun) -> dict[str, list[str]]:
    """Variable names each workload receives in the recorded resources."""
    given = {
        r.get("metadata", "labels", "component"): [
            e["name"] for e in r.get("spec", "template", "spec", "containers")[0]["env"]
        ]
        for r in run.kubernetes()
        if r.inputs["kind"] in ("Deployment", "StatefulSet", "Job")
    }
    cron = run.kube_named("CronJob", "agentlane-anchor")
    template = cron.get("spec", "jobTemplate", "spec", "template", "spec")
    given[ANCHOR.component] = [e["name"] for e in template["containers"][0]["env"]]
    service = run.one("gcp:cloudrunv2/service:Service")
    given[COMMAND_SERVICE.component] = [
        e["name"] for e in service.inputs["template"]["containers"][0]["envs"]
    ]
    return given


# Documented beyond the core table (docs/contract.md, the rest of "Environment"): how a workload
# logs in to Cloud SQL, the size of its pool, the model key's file, the anchor CronJob's
# signing key, and the deployed code a runner records in each RunStarted.
DEPLOYMENT_ENV = frozenset(
    {"AGENTLANE_DB_IAM_AUTH", "AGENTLANE_DB_POOL_MAX", "OPENAI_API_KEY_FILE",
     "AGENTLANE_ANCHOR_KEY", "OTEL_TRACES_EXPORTER", "OTEL_TRACES_SAMPLER",
     "OTEL_TRACES_SAMPLER_ARG", "AGENTLANE_CODE_VERSION", "AGENTLANE_BLOB_STORE"}
)


def test_infra_names_are_in_the_contract_table() -> None:
    assert workload_env.ENV_NAMES <= CONTRACT_ENV_TABLE | DEPLOYMENT_ENV


def test_every_workload_gets_contract_names_only(run: StackRun) -> None:
    given = _given(run)
    assert set(given) == set(REQUIRED)
    for component, names in given.items():
        assert len(names) == len(set(names)), f"{component}: a variable is set twice"
        assert set(names) <= workload_env.ENV_NAMES, component
        assert REQUIRED[component] <= set(names), component


def test_cloud_run_does_not_set_its_reserved_port(run: StackRun) -> None:
    assert "PORT" not in _given(run)[COMMAND_SERVICE.component]


def test_infra_names_are_read_by_the_components() -> None:
    """Compare with agentlane.settings, the names the components actually read."""
    if importlib.util.find_spec("agentlane.settings") is None:
        pytest.skip("agentlane/settings.py (ENV_VARS) has not landed yet")
    settings = importlib.import_module("agentlane.settings")
    telemetry = importlib.import_module("agentlane.telemetry")
    assert workload_env.ENV_NAMES <= frozenset(settings.ENV_VARS) | telemetry.ENV_VARS
    contract = getattr(settings, "CONTRACT_ENV_VARS", None)
    if contract is not None:
        assert frozenset(contract) == CONTRACT_ENV_TABLE
