"""The projector: two replicas, one active at a time by a database lease (DESIGN.md)."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from ..config import StackConfig
from .base import Component
from .names import PROJECTOR
from .pod import container, metadata, pod_template, selector
from .scraping import pod_monitoring

__all__ = ["Projector"]

# The standby takes over within one lease TTL; a second pod is the whole point of the lease.
REPLICAS = 2
GRACE_SECONDS = 30


class Projector(Component):
    def __init__(
        self,
        name: str,
        config: StackConfig,
        provider: k8s.Provider,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("Projector", name, config, opts)
        labels = self.labels(PROJECTOR.component)
        self.deployment = k8s.apps.v1.Deployment(
            "projector",
            metadata=metadata("agentlane-projector", labels),
            spec={
                "replicas": REPLICAS,
                "selector": {"match_labels": selector(PROJECTOR)},
                "strategy": {
                    "type": "RollingUpdate",
                    "rolling_update": {"max_unavailable": 1, "max_surge": 1},
                },
                "template": pod_template(
                    PROJECTOR,
                    labels,
                    [container(PROJECTOR, config, config.projector)],
                    grace_seconds=GRACE_SECONDS,
                ),
            },
            opts=self.child(provider=provider),
        )
        k8s.policy.v1.PodDisruptionBudget(
            "projector",
            metadata=metadata("agentlane-projector", labels),
            spec={"max_unavailable": 1, "selector": {"match_labels": selector(PROJECTOR)}},
            opts=self.child(provider=provider),
        )
        pod_monitoring(PROJECTOR, labels, self.child(provider=provider))
        self.register_outputs({"deployment": self.deployment.metadata.name})
