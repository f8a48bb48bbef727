"""Pod and container specs shared by every agentlane workload on GKE.

Each serving container gets the same shape: the three probes on the CONTRACT health routes, a
preStop pause so endpoints drop the pod before SIGTERM, requests == limits (Autopilot kills at
the request, seed module 24), a non-root read-only container, and the contract environment.
"""

from __future__ import annotations

from typing import Any

from ..config import Resources, StackConfig
from .names import APP, NAMESPACE, Workload, secret_id
from .workload_env import (
    CA_DIR,
    CA_FILE,
    DATABASE_CONFIG,
    HTTP_PORT,
    SECRET_KEYS,
    SECRETS_DIR,
    EnvVar,
    env_for,
)

__all__ = [
    "EXIT_MARGIN_SECONDS",
    "PRE_STOP_SECONDS",
    "PROCESS_GRACE_SECONDS",
    "SERVICE_GRACE_SECONDS",
    "container",
    "metadata",
    "pod_template",
    "secret_file_volumes",
    "selector",
]

# Long enough for kube-proxy and the load balancer (NEG endpoints) to stop routing to a pod marked
# for deletion; the course's figure.
PRE_STOP_SECONDS = 10
# What a service process takes at most after SIGTERM (run_service's default grace_s).
PROCESS_GRACE_SECONDS = 30
# Slack after the drain for the process to exit on its own before SIGKILL.
EXIT_MARGIN_SECONDS = 10
# The course's 60 s: more than preStop, the process's drain and the margin together (50).
SERVICE_GRACE_SECONDS = 60
RUN_AS = 10001


def selector(workload: Workload) -> dict[str, str]:
    """Immutable selector labels (a subset of the cost labels)."""
    return {"app": APP, "component": workload.component}


def metadata(name: str, labels: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": NAMESPACE, "labels": labels, **extra}


def _env(variables: list[EnvVar]) -> list[dict[str, Any]]:
    rendered: list[dict[str, Any]] = []
    for var in variables:
        if var.secret is not None:
            ref = {"name": secret_id(var.secret), "key": var.name}
            rendered.append({"name": var.name, "value_from": {"secret_key_ref": ref}})
        elif var.config_map is not None:
            assert var.config_key is not None, f"{var.name}: a ConfigMap variable names its key"
            ref = {"name": var.config_map, "key": var.config_key}
            rendered.append({"name": var.name, "value_from": {"config_map_key_ref": ref}})
        elif var.pod_field is not None:
            field = {"field_path": var.pod_field}
            rendered.append({"name": var.name, "value_from": {"field_ref": field}})
        elif var.secret_file is not None:
            rendered.append({"name": var.name, "value": secret_file_path(var.secret_file)})
        else:
            rendered.append({"name": var.name, "value": var.value})
    return rendered


def secret_file_path(logical: str) -> str:
    """Where the value of projected secret ``logical`` is mounted (a whole-directory mount,
    never subPath, so the kubelet can swap in a new value)."""
    return f"{_secret_dir(logical)}/{SECRET_KEYS[logical]}"


def _secret_dir(logical: str) -> str:
    return f"{SECRETS_DIR}/{logical}"


def _secret_files(variables: list[EnvVar]) -> list[str]:
    return [var.secret_file for var in variables if var.secret_file is not None]


def secret_file_volumes(variables: list[EnvVar]) -> list[dict[str, Any]]:
    """The volumes behind the variables that are secrets mounted as files."""
    return [
        {
            "name": f"secret-{logical}",
            "secret": {
                "secret_name": secret_id(logical),
                "items": [{"key": SECRET_KEYS[logical], "path": SECRET_KEYS[logical]}],
            },
        }
        for logical in _secret_files(variables)
    ]


def _resources(size: Resources) -> dict[str, dict[str, str]]:
    amounts = {"cpu": size.cpu, "memory": size.memory, "ephemeral-storage": size.ephemeral_storage}
    return {"requests": dict(amounts), "limits": dict(amounts)}


def _http_get(path: str) -> dict[str, Any]:
    return {"http_get": {"path": path, "port": "http"}}


def container(
    workload: Workload, config: StackConfig, size: Resources, *, serving: bool = True
) -> dict[str, Any]:
    """The workload's container; `serving=False` (a run-to-completion Job) has no probes."""
    variables = env_for(workload, config)
    spec: dict[str, Any] = {
        "name": workload.component,
        "image": config.image,
        "command": workload.command,
        "env": _env(variables),
        "resources": _resources(size),
        "security_context": {
            "allow_privilege_escalation": False,
            "read_only_root_filesystem": True,
            "run_as_non_root": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volume_mounts": [
            {"name": "tmp", "mount_path": "/tmp"},
            {"name": "db-ca", "mount_path": CA_DIR, "read_only": True},
            *(
                {"name": f"secret-{logical}", "mount_path": _secret_dir(logical), "read_only": True}
                for logical in _secret_files(variables)
            ),
        ],
    }
    if serving:
        spec |= {
            "ports": [{"name": "http", "container_port": HTTP_PORT}],
            # Startup covers migrations check and (runners) the first shard claim.
            "startup_probe": {
                **_http_get("/healthz"),
                "period_seconds": 2,
                "failure_threshold": 30,
            },
            "readiness_probe": {
                **_http_get("/readyz"),
                "period_seconds": 5,
                "failure_threshold": 2,
            },
            "liveness_probe": {
                **_http_get("/healthz"),
                "period_seconds": 10,
                "failure_threshold": 3,
            },
            "lifecycle": {"pre_stop": {"sleep": {"seconds": PRE_STOP_SECONDS}}},
        }
    return spec


def pod_template(
    workload: Workload,
    labels: dict[str, str],
    containers: list[dict[str, Any]],
    *,
    grace_seconds: int,
    restart_policy: str | None = None,
    spread: bool = True,
    volumes: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "service_account_name": workload.ksa,
        "termination_grace_period_seconds": grace_seconds,
        "security_context": {
            "run_as_non_root": True,
            "run_as_user": RUN_AS,
            "run_as_group": RUN_AS,
            "fs_group": RUN_AS,
            "seccomp_profile": {"type": "RuntimeDefault"},
        },
        "containers": containers,
        "volumes": [
            {"name": "tmp", "empty_dir": {"size_limit": "256Mi"}},
            {
                "name": "db-ca",
                "config_map": {
                    "name": DATABASE_CONFIG,
                    "items": [{"key": CA_FILE, "path": CA_FILE}],
                },
            },
            *(volumes or ()),
        ],
    }
    if restart_policy is not None:
        spec["restart_policy"] = restart_policy
    if spread:
        # A zone outage takes at most its share of runners/gateways with it.
        spec["topology_spread_constraints"] = [
            {
                "max_skew": 1,
                "topology_key": "topology.kubernetes.io/zone",
                "when_unsatisfiable": "ScheduleAnyway",
                "label_selector": {"match_labels": selector(workload)},
            }
        ]
    return {"metadata": {"labels": labels}, "spec": spec}
