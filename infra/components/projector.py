"""The projector: two replicas, one active at a time by a database lease (docs/design.md)."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from ..config import StackConfig
from ..connection_budget import PROJECTOR_REPLICAS
from .base import WorkloadComponent
from .names import PROJECTOR
from .pod import SERVICE_GRACE_SECONDS

__all__ = ["Projector"]

# The standby takes over within one lease TTL; a second pod is the whole point of the lease.
REPLICAS = PROJECTOR_REPLICAS
GRACE_SECONDS = SERVICE_GRACE_SECONDS


class Projector(WorkloadComponent):
    def __init__(
        self,
        name: str,
        config: StackConfig,
        provider: k8s.Provider,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("Projector", name, config, PROJECTOR, provider, opts)
        self.deployment = self.rolling_deployment(
            "projector",
            "agentlane-projector",
            config.projector,
            replicas=REPLICAS,
            max_unavailable=1,
            grace_seconds=GRACE_SECONDS,
        )
        self.serve("projector", "agentlane-projector", max_unavailable=1)
        self.register_outputs({"deployment": self.deployment.metadata.name})
