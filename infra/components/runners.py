"""Runners: a StatefulSet behind a headless Service, so each pod has a stable name (POD_NAME)."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from ..config import StackConfig
from .base import WorkloadComponent
from .names import RUNNER
from .pod import EXIT_MARGIN_SECONDS, PRE_STOP_SECONDS, selector
from .workload_env import HTTP_PORT

__all__ = ["Runners"]



class Runners(WorkloadComponent):
    def __init__(
        self,
        name: str,
        config: StackConfig,
        provider: k8s.Provider,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("Runners", name, config, RUNNER, provider, opts)
        cfg = config.runners
        self.service = k8s.core.v1.Service(
            "runners-headless",
            metadata=self.metadata("agentlane-runners"),
            spec={
                "cluster_ip": "None",
                # Peers must resolve a starting runner before it is ready (it is claiming shards).
                "publish_not_ready_addresses": True,
                "selector": selector(RUNNER),
                "ports": [{"name": "http", "port": HTTP_PORT, "target_port": "http"}],
            },
            opts=self.child(),
        )
        # SIGTERM arrives after preStop; the runner then finishes in-flight steps and releases
        # its shards within drain_seconds, which must end before SIGKILL.
        grace = PRE_STOP_SECONDS + cfg.drain_seconds + EXIT_MARGIN_SECONDS
        self.stateful_set = k8s.apps.v1.StatefulSet(
            "runners",
            metadata=self.metadata("agentlane-runner"),
            spec={
                "service_name": self.service.metadata.name,
                "replicas": cfg.replicas,
                # Runners coordinate through leases, not start order.
                "pod_management_policy": "Parallel",
                "selector": {"match_labels": selector(RUNNER)},
                # A canary rollout updates the pods at or above the partition only.
                "update_strategy": {
                    "type": "RollingUpdate",
                    "rolling_update": {"partition": cfg.rollout_partition},
                },
                "template": self.pod_template(cfg.resources, grace_seconds=grace),
            },
            opts=self.child(),
        )
        self.serve("runners", "agentlane-runner", max_unavailable=1)
        self.register_outputs({"statefulSet": self.stateful_set.metadata.name})
