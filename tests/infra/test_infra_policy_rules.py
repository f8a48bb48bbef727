"""Each policy rule rejects a failing fixture and accepts a passing one.

The fixtures are engine-shaped props (camelCase), as the policy pack receives them.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from infra.components.armor import INTERNAL_PATHS_EXPRESSION
from infra.policy import rules
from infra.policy.rules import RULES

PACK = Path(rules.__file__).with_name("__main__.py")
LABELS = {"env": "prod", "app": "agentlane", "component": "x", "tenant-tier": "shared"}
IMAGE = "us-central1-docker.pkg.dev/p/agentlane/agentlane:0123abcd"


class Case(NamedTuple):
    rule: str
    type: str
    failing: dict[str, Any]
    passing: dict[str, Any]


def _sql(**settings: Any) -> dict[str, Any]:
    base = {
        "ipConfiguration": {
            "ipv4Enabled": False,
            "privateNetwork": "projects/p/global/networks/agentlane",
            "sslMode": "ENCRYPTED_ONLY",
            "serverCaMode": "GOOGLE_MANAGED_CAS_CA",
        },
        "backupConfiguration": {"enabled": True, "pointInTimeRecoveryEnabled": True},
        "databaseFlags": [
            {"name": "idle_in_transaction_session_timeout", "value": "60000"},
            {"name": "statement_timeout", "value": "300000"},
            {"name": "cloudsql.iam_authentication", "value": "on"},
        ],
        "availabilityType": "REGIONAL",
        "deletionProtectionEnabled": True,
        "userLabels": LABELS,
    }
    return {"deletionProtection": True, "settings": {**base, **settings}}


def _cluster(**props: Any) -> dict[str, Any]:
    base = {
        "enableAutopilot": True,
        "privateClusterConfig": {"enablePrivateNodes": True},
        "masterAuthorizedNetworksConfig": {"cidrBlocks": [{"cidrBlock": "203.0.113.0/24"}]},
        "resourceLabels": LABELS,
        "deletionProtection": True,
    }
    return {**base, **props}


def _container(**props: Any) -> dict[str, Any]:
    amounts = {"cpu": "500m", "memory": "1Gi"}
    probe = {"httpGet": {"path": "/healthz", "port": "http"}}
    base = {
        "name": "runner",
        "image": IMAGE,
        "resources": {"requests": amounts, "limits": dict(amounts)},
        "securityContext": {
            "runAsNonRoot": True,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
        },
        "startupProbe": probe,
        "readinessProbe": probe,
        "livenessProbe": probe,
        "lifecycle": {"preStop": {"sleep": {"seconds": 5}}},
    }
    return {**base, **props}


def _workload(*containers: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"name": "w", "labels": LABELS},
        "spec": {"template": {"spec": {"containers": list(containers)}}},
    }


def _armor(*drop: str, header_first: bool = False) -> dict[str, Any]:
    def ban(key: str) -> dict[str, Any]:
        first = (key == "HTTP_HEADER") == header_first
        return {
            "action": "rate_based_ban",
            "priority": 2000 if first else 2100,
            "rateLimitOptions": {"enforceOnKey": key, "exceedAction": "deny(429)"},
        }

    waf = [
        {
            "action": "deny(403)",
            "match": {"expr": {"expression": f"evaluatePreconfiguredWaf('{w}')"}},
        }
        for w in ("sqli-v33-stable", "xss-v33-stable")
        if w not in drop
    ]
    bans = [ban(k) for k in ("IP", "HTTP_HEADER") if k not in drop]
    internal = [
        {"action": "deny(404)", "match": {"expr": {"expression": INTERNAL_PATHS_EXPRESSION}}}
    ] if "internal" not in drop else []
    return {"rules": internal + waf + bans, "labels": LABELS}


def _bucket() -> dict[str, Any]:
    return {
        "uniformBucketLevelAccess": True,
        "publicAccessPrevention": "enforced",
        "retentionPolicy": {"retentionPeriod": "86400", "isLocked": True},
        "labels": LABELS,
    }


without_probe = _container()
del without_probe["readinessProbe"]

CASES = [
    Case(
        "sql-private-tls",
        rules.SQL_INSTANCE,
        _sql(ipConfiguration={"ipv4Enabled": True, "sslMode": "ALLOW_UNENCRYPTED_AND_ENCRYPTED"}),
        _sql(),
    ),
    Case(
        "sql-private-tls",
        rules.SQL_INSTANCE,
        _sql(
            ipConfiguration={
                "ipv4Enabled": False,
                "privateNetwork": "n",
                "sslMode": "ENCRYPTED_ONLY",
                "authorizedNetworks": [{"value": "0.0.0.0/0"}],
            }
        ),
        _sql(),
    ),
    Case("sql-recovery", rules.SQL_INSTANCE, _sql(backupConfiguration={"enabled": True}), _sql()),
    Case("sql-timeouts", rules.SQL_INSTANCE, _sql(databaseFlags=[]), _sql()),
    Case(
        "sql-iam-verified",
        rules.SQL_INSTANCE,
        _sql(
            ipConfiguration={
                "ipv4Enabled": False, "privateNetwork": "n", "sslMode": "ENCRYPTED_ONLY"
            },
            databaseFlags=[{"name": "statement_timeout", "value": "1"}],
        ),
        _sql(),
    ),
    Case(
        "bucket-retention",
        rules.BUCKET,
        {**_bucket(), "retentionPolicy": {"retentionPeriod": "86400", "isLocked": False}},
        _bucket(),
    ),
    Case(
        "bucket-retention",
        rules.BUCKET,
        {**_bucket(), "publicAccessPrevention": "inherited", "retentionPolicy": None},
        _bucket(),
    ),
    Case(
        "prod-deletion-guards",
        rules.SQL_INSTANCE,
        {**_sql(deletionProtectionEnabled=False), "deletionProtection": False},
        _sql(),
    ),
    Case("prod-deletion-guards", rules.SQL_INSTANCE, _sql(availabilityType="ZONAL"), _sql()),
    Case("prod-deletion-guards", rules.GKE_CLUSTER, _cluster(deletionProtection=False), _cluster()),
    Case(
        "gke-private-autopilot",
        rules.GKE_CLUSTER,
        _cluster(enableAutopilot=False, nodeConfig={"machineType": "e2-standard-4"}),
        _cluster(),
    ),
    Case(
        "gke-private-autopilot",
        rules.GKE_CLUSTER,
        _cluster(masterAuthorizedNetworksConfig={"cidrBlocks": [{"cidrBlock": "0.0.0.0/0"}]}),
        _cluster(),
    ),
    Case(
        "gke-private-autopilot",
        rules.GKE_CLUSTER,
        _cluster(privateClusterConfig={"enablePrivateNodes": False}),
        _cluster(),
    ),
    Case(
        "cloud-run-ingress",
        rules.CLOUD_RUN,
        {"ingress": "INGRESS_TRAFFIC_ALL"},
        {"ingress": "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER"},
    ),
    Case(
        "iam-least-privilege",
        "gcp:projects/iAMMember:IAMMember",
        {"role": "roles/editor", "member": "serviceAccount:a@p.iam.gserviceaccount.com"},
        {"role": "roles/pubsub.publisher", "member": "serviceAccount:a@p.iam.gserviceaccount.com"},
    ),
    Case(
        "iam-least-privilege",
        "gcp:pubsub/topicIAMMember:TopicIAMMember",
        {"role": "roles/pubsub.admin", "member": "serviceAccount:a@p.iam.gserviceaccount.com"},
        {"role": "roles/pubsub.publisher", "member": "serviceAccount:a@p.iam.gserviceaccount.com"},
    ),
    Case(
        "iam-least-privilege",
        "gcp:secretmanager/secretIamMember:SecretIamMember",
        {"role": "roles/secretmanager.secretAccessor", "member": "allUsers"},
        {"role": "roles/secretmanager.secretAccessor", "member": "serviceAccount:a@p.iam.x"},
    ),
    Case(
        "iam-least-privilege",
        "gcp:projects/iAMCustomRole:IAMCustomRole",
        {"permissions": ["pubsub.subscriptions.create", "pubsub.topics.setIamPolicy"]},
        {"permissions": ["pubsub.subscriptions.create", "pubsub.topics.attachSubscription"]},
    ),
    Case(
        "secret-access-per-secret",
        "gcp:projects/iAMMember:IAMMember",
        {"role": "roles/secretmanager.secretAccessor", "member": "serviceAccount:a@p.x"},
        {"role": "roles/pubsub.subscriber", "member": "serviceAccount:a@p.x"},
    ),
    Case(
        "pubsub-dead-letter",
        rules.SUBSCRIPTION,
        {"topic": "agent-events", "labels": LABELS},
        {
            "topic": "agent-events",
            "labels": LABELS,
            "deadLetterPolicy": {
                "deadLetterTopic": "projects/p/topics/agent-events-dead-letter",
                "maxDeliveryAttempts": 10,
            },
        },
    ),
    Case(
        "pubsub-dead-letter",
        rules.SUBSCRIPTION,
        {
            "topic": "agent-events",
            "labels": LABELS,
            "deadLetterPolicy": {"deadLetterTopic": "t", "maxDeliveryAttempts": 1000},
        },
        {"topic": "projects/p/topics/agent-events-dead-letter", "labels": LABELS},
    ),
    Case(
        "backend-armor",
        rules.BACKEND_SERVICE,
        {"loadBalancingScheme": "EXTERNAL_MANAGED"},
        {"loadBalancingScheme": "EXTERNAL_MANAGED", "securityPolicy": "projects/p/armor"},
    ),
    Case("armor-baseline", rules.SECURITY_POLICY, _armor("xss-v33-stable"), _armor()),
    Case("armor-baseline", rules.SECURITY_POLICY, _armor("HTTP_HEADER"), _armor()),
    Case("armor-baseline", rules.SECURITY_POLICY, _armor(header_first=True), _armor()),
    Case("armor-baseline", rules.SECURITY_POLICY, _armor("internal"), _armor()),
    Case(
        "firewall-no-world-ingress",
        rules.FIREWALL,
        {"direction": "INGRESS", "sourceRanges": ["0.0.0.0/0"]},
        {"direction": "INGRESS", "sourceRanges": ["35.191.0.0/16", "130.211.0.0/22"]},
    ),
    Case(
        "k8s-hardening",
        "kubernetes:apps/v1:StatefulSet",
        _workload(without_probe),
        _workload(_container()),
    ),
    Case(
        "k8s-hardening",
        "kubernetes:apps/v1:Deployment",
        _workload(_container(resources={"requests": {"cpu": "1"}, "limits": {"cpu": "2"}})),
        _workload(_container()),
    ),
    Case(
        "k8s-hardening",
        "kubernetes:batch/v1:Job",
        _workload(_container(securityContext={"readOnlyRootFilesystem": True})),
        _workload(_container(startupProbe=None, lifecycle=None)),
    ),
    Case(
        "image-pinned",
        "kubernetes:apps/v1:Deployment",
        _workload(_container(image="us-docker.pkg.dev/p/r/agentlane:latest")),
        _workload(_container()),
    ),
    Case(
        "image-pinned",
        rules.CLOUD_RUN,
        {
            "ingress": "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER",
            "template": {"containers": [{"image": "us-docker.pkg.dev/p/r/agentlane"}]},
        },
        {
            "ingress": "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER",
            "template": {"containers": [{"image": f"{IMAGE}@sha256:{'0' * 64}"}]},
        },
    ),
    Case(
        "labels",
        "gcp:pubsub/topic:Topic",
        {"labels": {"env": "dev", "app": "agentlane"}},
        {"labels": LABELS},
    ),
    Case(
        "labels",
        "kubernetes:core/v1:Service",
        {"metadata": {"name": "s"}},
        {"metadata": {"name": "s", "labels": LABELS}},
    ),
    Case(
        "k8s-provider-gke-auth",
        rules.K8S_PROVIDER,
        {"kubeconfig": '{"users": [{"user": {"token": "static"}}]}'},
        {"kubeconfig": '{"users": [{"user": {"exec": {"command": "gke-gcloud-auth-plugin"}}}]}'},
    ),
]


def _check(name: str) -> Any:
    return next(rule.check for rule in RULES if rule.name == name)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.rule}:{c.type.rsplit(':', 1)[-1]}")
def test_rule_rejects_failing_and_accepts_passing_fixture(case: Case) -> None:
    check = _check(case.rule)
    assert check(case.type, case.failing), "the failing fixture passed"
    assert check(case.type, case.passing) == []


def test_every_rule_has_fixtures() -> None:
    assert {rule.name for rule in RULES} == {case.rule for case in CASES}
    assert len({rule.name for rule in RULES}) == len(RULES)


def test_rules_ignore_types_they_do_not_govern() -> None:
    for rule in RULES:
        assert rule.check("gcp:storage/bucketObject:BucketObject", {"role": None}) == []


def test_pack_registers_every_rule_and_imports_only_rules() -> None:
    """Read, never import, the pack: its PolicyPack(...) starts a server and blocks."""
    tree = ast.parse(PACK.read_text())
    imported = {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    assert imported == {"pulumi_policy", "rules"}
    assert "policies=[_policy(rule) for rule in RULES]" in PACK.read_text()
