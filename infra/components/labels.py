"""The four cost-attribution labels (seed module 22) stamped on everything that takes labels."""

from __future__ import annotations

from .names import APP

__all__ = ["labels"]


def labels(*, env: str, component: str, tenant_tier: str) -> dict[str, str]:
    """GCP and Kubernetes labels; Billing export and GKE cost allocation group by these keys."""
    return {"env": env, "app": APP, "component": component, "tenant-tier": tenant_tier}
