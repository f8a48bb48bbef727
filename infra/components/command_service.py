"""The command service on Cloud Run v2: reachable only through the load balancer, and to the
private database through Direct VPC egress (no connector VMs to pay for or scale)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pulumi
import pulumi_gcp as gcp

from ..config import StackConfig
from .base import Component
from .identity import ServiceAccounts, member
from .names import COMMAND_SERVICE, secret_id
from .network import Network
from .workload_env import (
    CA_DIR,
    CA_FILE,
    DATABASE_CONFIG,
    HTTP_PORT,
    SECRET_DATABASE_CA,
    env_for,
)

__all__ = ["COMMAND_SERVICE_NAME", "PROMETHEUS_SIDECAR_IMAGE", "CommandService"]

#: The Cloud Run service (its name is also the label Cloud Run's request metrics carry).
COMMAND_SERVICE_NAME = f"agentlane-{COMMAND_SERVICE.component}"
#: Google's Managed Service for Prometheus collector for Cloud Run, run beside the service: its
#: default RunMonitoring configuration scrapes localhost:8080/metrics, the service's own port, and
#: scrapes once more at shutdown however short the instance lived. Pinned, like every image.
PROMETHEUS_SIDECAR_IMAGE = (
    "us-docker.pkg.dev/cloud-ops-agents-artifacts/cloud-run-gmp-sidecar/cloud-run-gmp-sidecar:1.2.0"
)
PROMETHEUS_SIDECAR = "collector"
#: Cloud Run's longest request (60 minutes), so that SSE streams are not cut at 5.
REQUEST_TIMEOUT_SECONDS = 3600
#: Cloud Run sends SIGKILL 10 s after SIGTERM; the process's whole drain fits well inside.
DRAIN_GRACE_SECONDS = 8


def _envs(config: StackConfig, database_url: pulumi.Input[str]) -> list[dict[str, Any]]:
    rendered: list[dict[str, Any]] = []
    for var in env_for(COMMAND_SERVICE, config):
        if var.secret is not None:
            ref = {"secret": secret_id(var.secret), "version": "latest"}
            rendered.append({"name": var.name, "value_source": {"secret_key_ref": ref}})
        elif var.config_map == DATABASE_CONFIG:
            # Cloud Run has no ConfigMaps: the same (non-secret) URL as a literal.
            rendered.append({"name": var.name, "value": database_url})
        else:
            rendered.append({"name": var.name, "value": var.value})
    return rendered


class CommandService(Component):
    def __init__(
        self,
        name: str,
        config: StackConfig,
        network: Network,
        accounts: ServiceAccounts,
        database_url: pulumi.Input[str],
        readable_secrets: Sequence[pulumi.Resource],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("CommandService", name, config, opts)
        cfg = config.command_service
        labels = self.labels(COMMAND_SERVICE.component)
        health = {"path": "/healthz", "port": HTTP_PORT}
        # No traffic before it is ready: database reachable, migrations applied, shards agreed.
        ready = {"path": "/readyz", "port": HTTP_PORT}
        self.service = gcp.cloudrunv2.Service(
            name,
            name=COMMAND_SERVICE_NAME,
            location=config.region,
            ingress="INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER",
            # Callers are authenticated by the service itself (AGENTLANE_AUTH=jwt) and can
            # only arrive through the load balancer and Cloud Armor; no allUsers binding.
            invoker_iam_disabled=True,
            deletion_protection=config.deletion_protection,
            labels=labels,
            template={
                "service_account": accounts.workloads[COMMAND_SERVICE].email,
                "scaling": {
                    "min_instance_count": cfg.min_instances,
                    "max_instance_count": cfg.max_instances,
                },
                "max_instance_request_concurrency": cfg.concurrency,
                # Cloud Run ends a request at this timeout (default 300 s), event streams
                # included; at the most it allows, a stream reconnects with Last-Event-ID hourly.
                "timeout": f"{REQUEST_TIMEOUT_SECONDS}s",
                "vpc_access": {
                    "network_interfaces": [
                        {"network": network.vpc.id, "subnetwork": network.subnet.id}
                    ],
                    # The internet (JWKS) goes direct; only the VPC's private ranges use it.
                    "egress": "PRIVATE_RANGES_ONLY",
                },
                "labels": labels,
                # The database's CA for verify-full (Cloud Run mounts files from Secret Manager).
                "volumes": [
                    {
                        "name": "db-ca",
                        "secret": {
                            "secret": secret_id(SECRET_DATABASE_CA),
                            "items": [{"version": "latest", "path": CA_FILE}],
                        },
                    }
                ],
                "containers": [
                    {
                        "name": COMMAND_SERVICE.component,
                        "image": config.image,
                        "commands": COMMAND_SERVICE.command,
                        "args": ["--drain-grace", str(DRAIN_GRACE_SECONDS)],
                        "ports": {"name": "http1", "container_port": HTTP_PORT},
                        "envs": _envs(config, database_url),
                        "volume_mounts": [{"name": "db-ca", "mount_path": CA_DIR}],
                        "resources": {
                            "limits": {"cpu": cfg.resources.cpu, "memory": cfg.resources.memory},
                            "startup_cpu_boost": True,
                        },
                        "startup_probe": {
                            "http_get": ready,
                            "period_seconds": 2,
                            "failure_threshold": 30,
                        },
                        "liveness_probe": {"http_get": health, "period_seconds": 10},
                    },
                    {
                        "name": PROMETHEUS_SIDECAR,
                        "image": PROMETHEUS_SIDECAR_IMAGE,
                        "depends_ons": [COMMAND_SERVICE.component],
                    },
                ],
            },
            # A revision that cannot read its secret fails to deploy.
            opts=self.child(depends_on=list(readable_secrets)),
        )
        # The collector writes the scraped series to Cloud Monitoring as the service's account.
        gcp.projects.IAMMember(
            f"{name}-metric-writer",
            project=config.project,
            role="roles/monitoring.metricWriter",
            member=member(accounts.workloads[COMMAND_SERVICE]),
            opts=self.child(),
        )
        self.register_outputs({"uri": self.service.uri})
