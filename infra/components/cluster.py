"""GKE Autopilot with private nodes, and the Kubernetes provider every manifest goes through."""

from __future__ import annotations

import json

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s

from ..config import StackConfig
from .base import Component
from .identity import ServiceAccounts
from .network import PODS_RANGE, SERVICES_RANGE, Network

__all__ = ["Cluster", "kubeconfig"]


def kubeconfig(endpoint: str, ca_certificate: str) -> str:
    """A kubeconfig that authenticates with the caller's gcloud login (no static token)."""
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "gke",
                    "cluster": {
                        "server": f"https://{endpoint}",
                        "certificate-authority-data": ca_certificate,
                    },
                }
            ],
            "contexts": [{"name": "gke", "context": {"cluster": "gke", "user": "gke"}}],
            "current-context": "gke",
            "users": [
                {
                    "name": "gke",
                    "user": {
                        "exec": {
                            "apiVersion": "client.authentication.k8s.io/v1beta1",
                            "command": "gke-gcloud-auth-plugin",
                            "installHint": "gcloud components install gke-gcloud-auth-plugin",
                            "provideClusterInfo": True,
                        }
                    },
                }
            ],
        }
    )


class Cluster(Component):
    def __init__(
        self,
        name: str,
        config: StackConfig,
        network: Network,
        accounts: ServiceAccounts,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("Cluster", name, config, opts)
        self.cluster = gcp.container.Cluster(
            name,
            name=f"{name}-{config.stack}",
            location=config.region,
            # Autopilot owns the nodes: no node_config or node pools here.
            enable_autopilot=True,
            network=network.vpc.id,
            subnetwork=network.subnet.id,
            ip_allocation_policy={
                "cluster_secondary_range_name": PODS_RANGE,
                "services_secondary_range_name": SERVICES_RANGE,
            },
            private_cluster_config={
                "enable_private_nodes": True,
                # Pulumi and operators reach the API from the listed CIDRs only.
                "enable_private_endpoint": False,
            },
            master_authorized_networks_config={
                "cidr_blocks": [
                    {"cidr_block": n.cidr, "display_name": n.name}
                    for n in config.master_authorized_networks
                ],
                "gcp_public_cidrs_access_enabled": False,
            },
            cluster_autoscaling={
                "auto_provisioning_defaults": {
                    "service_account": accounts.nodes.email,
                    "oauth_scopes": ["https://www.googleapis.com/auth/cloud-platform"],
                }
            },
            release_channel={"channel": "REGULAR"},
            # The alert policies read agentlane_* metrics scraped by Managed Prometheus.
            monitoring_config={"managed_prometheus": {"enabled": True}},
            # GKE cost allocation: the billing export breaks costs down by namespace and label.
            cost_management_config={"enabled": True},
            deletion_protection=config.deletion_protection,
            resource_labels=self.labels("cluster"),
            opts=self.child(),
        )
        self.kubeconfig: pulumi.Output[str] = pulumi.Output.all(
            self.cluster.endpoint, self.cluster.master_auth.cluster_ca_certificate
        ).apply(lambda args: kubeconfig(args[0], args[1] or ""))
        self.provider = k8s.Provider(
            "gke",
            kubeconfig=self.kubeconfig,
            enable_server_side_apply=True,
            opts=self.child(),
        )
        self.register_outputs({"cluster": self.cluster.name})
