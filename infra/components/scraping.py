"""Managed Prometheus scrape config: where the alert policies' agentlane_* series come from."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from .names import Workload
from .pod import metadata, selector

__all__ = ["pod_monitoring"]


def pod_monitoring(
    workload: Workload, labels: dict[str, str], opts: pulumi.ResourceOptions
) -> k8s.apiextensions.CustomResource:
    """Scrape `/metrics` on the workload's `http` port every 30 s."""
    return k8s.apiextensions.CustomResource(
        f"{workload.component}-metrics",
        api_version="monitoring.googleapis.com/v1",
        kind="PodMonitoring",
        metadata=metadata(f"{workload.component}-metrics", labels),
        # Custom resources are passed through untranslated, hence camelCase.
        spec={
            "selector": {"matchLabels": selector(workload)},
            "endpoints": [{"port": "http", "path": "/metrics", "interval": "30s"}],
        },
        opts=opts,
    )
