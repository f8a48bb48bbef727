"""Guardrails as pure functions: `(resource_type, props) -> violations`.

`props` are a resource's inputs as the engine sees them (camelCase API names). The policy pack
(`__main__.py`) runs every rule at `pulumi preview`; the unit tests run the same rules over the
mocked program and over one failing and one passing fixture each. This module imports nothing
from the program so the pack can load it on its own.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["RULES", "Rule", "violations"]

Props = Mapping[str, Any]

SQL_INSTANCE = "gcp:sql/databaseInstance:DatabaseInstance"
GKE_CLUSTER = "gcp:container/cluster:Cluster"
CLOUD_RUN = "gcp:cloudrunv2/service:Service"
SUBSCRIPTION = "gcp:pubsub/subscription:Subscription"
BACKEND_SERVICE = "gcp:compute/backendService:BackendService"
FIREWALL = "gcp:compute/firewall:Firewall"
SECURITY_POLICY = "gcp:compute/securityPolicy:SecurityPolicy"
SECRET = "gcp:secretmanager/secret:Secret"
CUSTOM_ROLES = (
    "gcp:projects/iAMCustomRole:IAMCustomRole",
    "gcp:organizations/iAMCustomRole:IAMCustomRole",
)
PROJECT_IAM = ("gcp:projects/iAMMember:IAMMember", "gcp:projects/iAMBinding:IAMBinding")
SERVING_WORKLOADS = ("kubernetes:apps/v1:Deployment", "kubernetes:apps/v1:StatefulSet")
CRON_JOB = "kubernetes:batch/v1:CronJob"
JOBS = ("kubernetes:batch/v1:Job", CRON_JOB)
BUCKET = "gcp:storage/bucket:Bucket"
# Server certificates that name the instance (its DNS name), so clients can verify-full.
NAMED_CA_MODES = frozenset({"GOOGLE_MANAGED_CAS_CA", "CUSTOMER_MANAGED_CAS_CA"})
K8S_PROVIDER = "pulumi:providers:kubernetes"

REQUIRED_LABELS = frozenset({"env", "app", "component", "tenant-tier"})
# Where each GCP type keeps its labels (the tests check this covers every labelled type used).
LABEL_PATHS: Mapping[str, tuple[str, ...]] = {
    SQL_INSTANCE: ("settings", "userLabels"),
    GKE_CLUSTER: ("resourceLabels",),
    CLOUD_RUN: ("labels",),
    SUBSCRIPTION: ("labels",),
    SECURITY_POLICY: ("labels",),
    SECRET: ("labels",),
    "gcp:artifactregistry/repository:Repository": ("labels",),
    "gcp:pubsub/topic:Topic": ("labels",),
    "gcp:compute/globalAddress:GlobalAddress": ("labels",),
    "gcp:compute/globalForwardingRule:GlobalForwardingRule": ("labels",),
    "gcp:monitoring/alertPolicy:AlertPolicy": ("userLabels",),
    "gcp:dns/managedZone:ManagedZone": ("labels",),
    BUCKET: ("labels",),
}
PRIMITIVE_ROLES = frozenset({"roles/owner", "roles/editor", "roles/viewer"})
PUBLIC_MEMBERS = frozenset({"allUsers", "allAuthenticatedUsers"})
OPEN_RANGES = frozenset({"0.0.0.0/0", "::/0"})
TLS_MODES = frozenset({"ENCRYPTED_ONLY", "TRUSTED_CLIENT_CERTIFICATE_REQUIRED"})
DEAD_LETTER_TOPIC = re.compile(r"-dead-letter$")


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    check: Callable[[str, Props], list[str]]


def _get(props: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(props, Mapping):
            return None
        props = props.get(key)
    return props


def _sql_private_tls(resource_type: str, props: Props) -> list[str]:
    if resource_type != SQL_INSTANCE:
        return []
    ip = _get(props, "settings", "ipConfiguration") or {}
    found = []
    if ip.get("ipv4Enabled") is not False:
        found.append("Cloud SQL must not have a public IPv4 address (ipv4Enabled: false)")
    if not ip.get("privateNetwork"):
        found.append("Cloud SQL must be on a private network (privateNetwork)")
    if ip.get("authorizedNetworks"):
        found.append("Cloud SQL must not list authorized networks")
    if ip.get("sslMode") not in TLS_MODES and ip.get("requireSsl") is not True:
        found.append("Cloud SQL must require TLS (sslMode ENCRYPTED_ONLY)")
    return found


def _sql_recovery(resource_type: str, props: Props) -> list[str]:
    if resource_type != SQL_INSTANCE:
        return []
    backup = _get(props, "settings", "backupConfiguration") or {}
    if backup.get("enabled") is True and backup.get("pointInTimeRecoveryEnabled") is True:
        return []
    return ["Cloud SQL must keep backups with point-in-time recovery"]


def _sql_timeouts(resource_type: str, props: Props) -> list[str]:
    if resource_type != SQL_INSTANCE:
        return []
    flags = {f.get("name"): f.get("value") for f in _get(props, "settings", "databaseFlags") or []}
    return [
        f"Cloud SQL must bound {flag} (database flag > 0)"
        for flag in ("idle_in_transaction_session_timeout", "statement_timeout")
        if not str(flags.get(flag, "0")).isdigit() or int(flags.get(flag, "0")) <= 0
    ]


def _sql_iam_verified(resource_type: str, props: Props) -> list[str]:
    if resource_type != SQL_INSTANCE:
        return []
    flags = {f.get("name"): f.get("value") for f in _get(props, "settings", "databaseFlags") or []}
    found = []
    if flags.get("cloudsql.iam_authentication") != "on":
        found.append("Cloud SQL must allow IAM database login (cloudsql.iam_authentication on)")
    if _get(props, "settings", "ipConfiguration", "serverCaMode") not in NAMED_CA_MODES:
        found.append("Cloud SQL must use a CA that names the instance (serverCaMode *_CAS_CA)")
    return found


def _bucket_retention(resource_type: str, props: Props) -> list[str]:
    if resource_type != BUCKET:
        return []
    found = []
    if props.get("uniformBucketLevelAccess") is not True:
        found.append("buckets use uniform bucket-level access (no object ACLs)")
    if props.get("publicAccessPrevention") != "enforced":
        found.append("buckets enforce public access prevention")
    retention = props.get("retentionPolicy") or {}
    if not str(retention.get("retentionPeriod", "")).isdigit():
        found.append("buckets keep objects under a retention policy")
    elif _env_of(resource_type, props) == "prod" and retention.get("isLocked") is not True:
        found.append("prod buckets lock their retention policy")
    return found


def _env_of(resource_type: str, props: Props) -> str | None:
    path = LABEL_PATHS.get(resource_type, ("labels",))
    env = _get(props, *path, "env")
    return env if isinstance(env, str) else None


def _prod_guards(resource_type: str, props: Props) -> list[str]:
    if _env_of(resource_type, props) != "prod":
        return []
    found = []
    if resource_type == SQL_INSTANCE:
        if props.get("deletionProtection") is not True:
            found.append("prod Cloud SQL needs deletionProtection")
        if _get(props, "settings", "deletionProtectionEnabled") is not True:
            found.append("prod Cloud SQL needs settings.deletionProtectionEnabled")
        if _get(props, "settings", "availabilityType") != "REGIONAL":
            found.append("prod Cloud SQL must be highly available (REGIONAL)")
    elif resource_type in (GKE_CLUSTER, CLOUD_RUN, SECRET):
        if props.get("deletionProtection") is not True:
            found.append(f"prod {resource_type} needs deletionProtection")
    return found


def _gke_private_autopilot(resource_type: str, props: Props) -> list[str]:
    if resource_type != GKE_CLUSTER:
        return []
    found = []
    if props.get("enableAutopilot") is not True:
        found.append("GKE must be Autopilot (enableAutopilot: true)")
    if props.get("nodeConfig") or props.get("nodePools"):
        found.append("Autopilot clusters must not declare nodeConfig or nodePools")
    if _get(props, "privateClusterConfig", "enablePrivateNodes") is not True:
        found.append("GKE nodes must be private (enablePrivateNodes: true)")
    blocks = _get(props, "masterAuthorizedNetworksConfig", "cidrBlocks")
    if not blocks:
        found.append("GKE control plane must list master authorized networks")
    elif any(b.get("cidrBlock") in OPEN_RANGES for b in blocks):
        found.append("GKE master authorized networks must not include 0.0.0.0/0")
    return found


def _cloud_run_ingress(resource_type: str, props: Props) -> list[str]:
    if resource_type != CLOUD_RUN:
        return []
    if props.get("ingress") in (None, "INGRESS_TRAFFIC_ALL"):
        return ["Cloud Run ingress must not be open to all (use the load balancer)"]
    return []


def _iam_roles(resource_type: str, props: Props) -> list[str]:
    kind = resource_type.rsplit(":", 1)[-1].lower()
    if resource_type in CUSTOM_ROLES:
        perms = props.get("permissions") or []
        return [
            f"custom role grants {p}"
            for p in perms
            if p.endswith(".setIamPolicy") or "*" in p or p.startswith("resourcemanager.")
        ]
    if "iam" not in kind:
        return []
    found = []
    role = str(props.get("role") or "")
    if role in PRIMITIVE_ROLES or "admin" in role.rsplit("/", 1)[-1].lower():
        found.append(f"IAM must not grant {role}")
    policy = str(props.get("policyData") or "")
    found += [f"IAM policy grants {r}" for r in sorted(PRIMITIVE_ROLES) if f'"{r}"' in policy]
    members = [props.get("member"), *(props.get("members") or [])]
    found += [f"IAM must not grant to {m}" for m in members if m in PUBLIC_MEMBERS]
    return found


def _secret_access_per_secret(resource_type: str, props: Props) -> list[str]:
    if resource_type in PROJECT_IAM and str(props.get("role", "")).startswith(
        "roles/secretmanager."
    ):
        return ["grant Secret Manager roles per secret (SecretIamMember), not project-wide"]
    return []


def _dead_letter(resource_type: str, props: Props) -> list[str]:
    if resource_type != SUBSCRIPTION:
        return []
    if DEAD_LETTER_TOPIC.search(str(props.get("topic", "")).rsplit("/", 1)[-1]):
        return []  # the hold subscription of a dead-letter topic is where dead letters end
    policy = props.get("deadLetterPolicy") or {}
    attempts = policy.get("maxDeliveryAttempts")
    if not policy.get("deadLetterTopic") or not isinstance(attempts, int | float):
        return ["Pub/Sub subscription needs a dead-letter policy"]
    if not 5 <= attempts <= 100:
        return ["dead-letter maxDeliveryAttempts must be within 5..100"]
    return []


def _backend_armor(resource_type: str, props: Props) -> list[str]:
    if resource_type != BACKEND_SERVICE:
        return []
    if props.get("loadBalancingScheme") in ("EXTERNAL", "EXTERNAL_MANAGED") and not props.get(
        "securityPolicy"
    ):
        return ["an external backend service needs a Cloud Armor security policy"]
    return []


def _armor_baseline(resource_type: str, props: Props) -> list[str]:
    if resource_type != SECURITY_POLICY:
        return []
    rules = props.get("rules") or []
    expressions = " ".join(str(_get(r, "match", "expr", "expression") or "") for r in rules)
    found = [
        f"Cloud Armor policy lacks the preconfigured {waf} rule"
        for waf in ("sqli-v33-stable", "xss-v33-stable")
        if waf not in expressions
    ]
    bans = {
        _get(r, "rateLimitOptions", "enforceOnKey")
        for r in rules
        if r.get("action") == "rate_based_ban"
        and _get(r, "rateLimitOptions", "exceedAction") == "deny(429)"
    }
    found += [
        f"Cloud Armor policy lacks a rate-based ban keyed on {key} answering 429"
        for key in ("IP", "HTTP_HEADER")
        if key not in bans
    ]
    # The first matching rule decides: a header ban before the IP ban lets a client that sends
    # a fresh header each time skip the IP ban.
    priority = {
        _get(r, "rateLimitOptions", "enforceOnKey"): r.get("priority", 0)
        for r in rules
        if r.get("action") == "rate_based_ban"
    }
    if "IP" in priority and "HTTP_HEADER" in priority and priority["IP"] > priority["HTTP_HEADER"]:
        found.append("Cloud Armor's per-IP ban must come before the per-header ban")
    if "/(metrics|readyz" not in expressions:
        found.append("Cloud Armor must keep /metrics and /readyz off the public load balancer")
    return found


def _firewall(resource_type: str, props: Props) -> list[str]:
    if resource_type != FIREWALL or props.get("direction", "INGRESS") != "INGRESS":
        return []
    if OPEN_RANGES & set(props.get("sourceRanges") or []):
        return ["firewall must not admit the whole internet"]
    return []


def _pod(props: Props) -> Mapping[str, Any]:
    """The pod spec of a workload (a CronJob's is one level further down)."""
    template = _get(props, "spec", "jobTemplate", "spec", "template") or _get(
        props, "spec", "template"
    )
    return _get(template, "spec") or {}


def _containers(props: Props) -> Iterable[Mapping[str, Any]]:
    return _pod(props).get("containers") or []


def _k8s_hardening(resource_type: str, props: Props) -> list[str]:
    if resource_type not in SERVING_WORKLOADS + JOBS:
        return []
    pod = _pod(props)
    pod_non_root = _get(pod, "securityContext", "runAsNonRoot") is True
    found = []
    for c in _containers(props):
        name = c.get("name")
        resources = c.get("resources") or {}
        requests, limits = resources.get("requests"), resources.get("limits")
        if not requests or requests != limits:
            found.append(f"container {name}: requests must equal limits")
        security = c.get("securityContext") or {}
        if not (pod_non_root or security.get("runAsNonRoot") is True):
            found.append(f"container {name}: must run as non-root")
        if security.get("readOnlyRootFilesystem") is not True:
            found.append(f"container {name}: root filesystem must be read-only")
        if security.get("allowPrivilegeEscalation") is not False:
            found.append(f"container {name}: must not allow privilege escalation")
        if resource_type in JOBS:
            continue  # runs to completion: nothing to probe, no traffic to drain
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            if not c.get(probe):
                found.append(f"container {name}: needs a {probe}")
        if not _get(c, "lifecycle", "preStop"):
            found.append(f"container {name}: needs a preStop hook")
    return found


def _image_pinned(resource_type: str, props: Props) -> list[str]:
    if resource_type in SERVING_WORKLOADS + JOBS:
        images = [c.get("image", "") for c in _containers(props)]
    elif resource_type == CLOUD_RUN:
        images = [c.get("image", "") for c in _get(props, "template", "containers") or []]
    else:
        return []
    found = []
    for image in images:
        tag = image.rsplit("/", 1)[-1].partition("@")[0]
        if "@sha256:" not in image and (":" not in tag or tag.endswith(":latest")):
            found.append(f"image {image!r} must be pinned (git sha tag or digest, never latest)")
    return found


def _labels(resource_type: str, props: Props) -> list[str]:
    if resource_type in LABEL_PATHS:
        present = _get(props, *LABEL_PATHS[resource_type]) or {}
    elif resource_type.startswith("kubernetes:"):
        present = _get(props, "metadata", "labels") or {}
    else:
        return []
    missing = REQUIRED_LABELS - set(present)
    return [f"missing labels: {', '.join(sorted(missing))}"] if missing else []


def _k8s_provider(resource_type: str, props: Props) -> list[str]:
    if resource_type != K8S_PROVIDER:
        return []
    kubeconfig = str(props.get("kubeconfig") or "")
    if "gke-gcloud-auth-plugin" not in kubeconfig:
        return ["the Kubernetes provider must authenticate with gke-gcloud-auth-plugin"]
    return []


RULES: tuple[Rule, ...] = (
    Rule("sql-private-tls", "Cloud SQL: private IP only, TLS required.", _sql_private_tls),
    Rule("sql-recovery", "Cloud SQL: backups and point-in-time recovery.", _sql_recovery),
    Rule("sql-timeouts", "Cloud SQL: idle-in-transaction and statement timeouts.", _sql_timeouts),
    Rule(
        "sql-iam-verified",
        "Cloud SQL: IAM database login, server certificates clients can verify-full.",
        _sql_iam_verified,
    ),
    Rule(
        "bucket-retention",
        "Storage: uniform access, never public, retention policy (locked in prod).",
        _bucket_retention,
    ),
    Rule("prod-deletion-guards", "prod: deletion protection and HA database.", _prod_guards),
    Rule(
        "gke-private-autopilot",
        "GKE: Autopilot, private nodes, closed API.",
        _gke_private_autopilot,
    ),
    Rule(
        "cloud-run-ingress", "Cloud Run: not reachable except through the LB.", _cloud_run_ingress
    ),
    Rule("iam-least-privilege", "IAM: no primitive, admin or public grants.", _iam_roles),
    Rule(
        "secret-access-per-secret", "Secret Manager: per-secret grants.", _secret_access_per_secret
    ),
    Rule("pubsub-dead-letter", "Pub/Sub: every subscription dead-letters.", _dead_letter),
    Rule("backend-armor", "External backends sit behind Cloud Armor.", _backend_armor),
    Rule("armor-baseline", "Cloud Armor: WAF rules and 429 rate bans.", _armor_baseline),
    Rule("firewall-no-world-ingress", "Firewall: no 0.0.0.0/0 ingress.", _firewall),
    Rule("k8s-hardening", "Pods: probes, preStop, requests == limits, non-root.", _k8s_hardening),
    Rule("image-pinned", "Images are pinned by git sha or digest.", _image_pinned),
    Rule("labels", "Cost labels env, app, component, tenant-tier.", _labels),
    Rule("k8s-provider-gke-auth", "Kubernetes provider uses GKE auth plugin.", _k8s_provider),
)


def violations(resource_type: str, props: Props) -> list[str]:
    """Every rule's violations for one resource, prefixed by the rule's name."""
    return [f"{rule.name}: {v}" for rule in RULES for v in rule.check(resource_type, props)]
