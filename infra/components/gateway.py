"""The WebSocket gateway: Deployment, HPA, PDB, and a Service exposed as standalone NEGs.

The NEGs join the Pulumi-owned load balancer (edge.py), whose backend service carries the
WebSocket timeout; a BackendConfig would only apply to a GKE-Ingress-owned backend.
"""

from __future__ import annotations

import json

import pulumi
import pulumi_kubernetes as k8s

from ..config import StackConfig
from .base import WorkloadComponent
from .names import GATEWAY, gateway_neg_name
from .pod import SERVICE_GRACE_SECONDS, selector
from .workload_env import HTTP_PORT

__all__ = ["Gateway"]

# On SIGTERM the gateway closes sockets with 1001 and clients reconnect elsewhere.
GRACE_SECONDS = SERVICE_GRACE_SECONDS
# Evictions at once as a share of the replicas (rounded up: 1 of 2, 2 of 20), where a count
# ("at least 1 available") would let 19 of 20 go together.
DISRUPTION_BUDGET = "10%"
CPU_TARGET_PERCENT = 70


class Gateway(WorkloadComponent):
    def __init__(
        self,
        name: str,
        config: StackConfig,
        provider: k8s.Provider,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("Gateway", name, config, GATEWAY, provider, opts)
        cfg = config.gateway
        self.deployment = self.rolling_deployment(
            "gateway",
            "agentlane-gateway",
            cfg.resources,
            # The HPA below owns the count.
            replicas=None,
            max_unavailable=0,
            grace_seconds=GRACE_SECONDS,
        )
        neg = {"exposed_ports": {str(HTTP_PORT): {"name": gateway_neg_name(config.stack)}}}
        self.service = k8s.core.v1.Service(
            "gateway",
            metadata=self.metadata(
                "agentlane-gateway", annotations={"cloud.google.com/neg": json.dumps(neg)}
            ),
            spec={
                "type": "ClusterIP",
                "selector": selector(GATEWAY),
                "ports": [{"name": "http", "port": HTTP_PORT, "target_port": "http"}],
            },
            opts=self.child(),
        )
        k8s.autoscaling.v2.HorizontalPodAutoscaler(
            "gateway",
            metadata=self.metadata("agentlane-gateway"),
            spec={
                "scale_target_ref": {
                    "api_version": "apps/v1",
                    "kind": "Deployment",
                    "name": self.deployment.metadata.name,
                },
                "min_replicas": cfg.min_replicas,
                "max_replicas": cfg.max_replicas,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {
                                "type": "Utilization",
                                "average_utilization": CPU_TARGET_PERCENT,
                            },
                        },
                    }
                ],
                # Scaling in drops sockets; wait out short dips before doing it.
                "behavior": {"scale_down": {"stabilization_window_seconds": 600}},
            },
            opts=self.child(),
        )
        self.serve("gateway", "agentlane-gateway", max_unavailable=DISRUPTION_BUDGET)
        self.register_outputs({"service": self.service.metadata.name})
