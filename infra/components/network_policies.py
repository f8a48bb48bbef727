"""Who may reach each workload's pods: nothing by default; the gateway from Google's load
balancers; every workload's metrics port from Managed Prometheus.

Egress stays open (the database, Pub/Sub, the model provider). Kubelet probes come from the node
and are not subject to these policies on GKE Dataplane V2.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from ..config import StackConfig
from .base import Component
from .names import GATEWAY, PROJECTOR, RUNNER, Workload
from .pod import metadata, selector
from .workload_env import HTTP_PORT

__all__ = ["LOAD_BALANCER_RANGES", "NetworkPolicies"]

#: Where Google's external Application Load Balancers and their health checks connect from.
LOAD_BALANCER_RANGES = ("130.211.0.0/22", "35.191.0.0/16")
#: The namespace of Google Cloud Managed Service for Prometheus's collectors.
PROMETHEUS_NAMESPACE = "gmp-system"

_SCRAPERS: dict[str, Any] = {
    "namespace_selector": {"match_labels": {"kubernetes.io/metadata.name": PROMETHEUS_NAMESPACE}}
}


class NetworkPolicies(Component):
    def __init__(
        self,
        name: str,
        config: StackConfig,
        provider: k8s.Provider,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("NetworkPolicies", name, config, opts)
        labels = self.labels("kubernetes")
        child = self.child(provider=provider)
        self.deny_all = k8s.networking.v1.NetworkPolicy(
            "deny-all-ingress",
            metadata=metadata("deny-all-ingress", labels),
            spec={"pod_selector": {}, "policy_types": ["Ingress"]},
            opts=child,
        )
        self.allowed = [
            self._allow(GATEWAY, [*({"ip_block": {"cidr": cidr}} for cidr in LOAD_BALANCER_RANGES),
                                  _SCRAPERS], child),
            self._allow(RUNNER, [_SCRAPERS], child),
            self._allow(PROJECTOR, [_SCRAPERS], child),
        ]
        self.register_outputs({})

    def _allow(
        self, workload: Workload, sources: list[dict[str, Any]], opts: pulumi.ResourceOptions
    ) -> k8s.networking.v1.NetworkPolicy:
        name = f"{workload.component}-ingress"
        return k8s.networking.v1.NetworkPolicy(
            name,
            metadata=metadata(name, self.labels(workload.component)),
            spec={
                "pod_selector": {"match_labels": selector(workload)},
                "policy_types": ["Ingress"],
                "ingress": [{"from": sources, "ports": [{"port": HTTP_PORT, "protocol": "TCP"}]}],
            },
            opts=opts,
        )
