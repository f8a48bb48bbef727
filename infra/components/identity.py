"""Service accounts: one per workload, one for GKE nodes, and Workload Identity bindings.

The workload accounts start with no roles; each grant lives next to the resource it opens
(a secret, a topic), so no account holds a project-wide data role.
"""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp

from ..config import StackConfig
from .base import Component
from .names import NAMESPACE, TRACED, WORKLOADS, Workload

__all__ = ["ServiceAccounts", "WorkloadIdentity", "member"]


def member(
    account: gcp.serviceaccount.Account | gcp.projects.ServiceIdentity,
) -> pulumi.Output[str]:
    """The IAM member string of a service account (a Google service agent's included)."""
    return account.email.apply(lambda email: f"serviceAccount:{email}")


class ServiceAccounts(Component):
    def __init__(
        self, name: str, config: StackConfig, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("ServiceAccounts", name, config, opts)
        self.workloads: dict[Workload, gcp.serviceaccount.Account] = {
            w: gcp.serviceaccount.Account(
                w.account_id,
                account_id=w.account_id,
                display_name=f"agentlane {w.component}",
                opts=self.child(),
            )
            for w in WORKLOADS
        }
        if config.runtime.trace_sample_ratio > 0:
            # The services' spans go to Cloud Trace (workload_env.py): writing them is all this
            # role allows.
            for workload in TRACED:
                gcp.projects.IAMMember(
                    f"{workload.account_id}-trace-agent",
                    project=config.project,
                    role="roles/cloudtrace.agent",
                    member=member(self.workloads[workload]),
                    opts=self.child(),
                )
        # Autopilot nodes otherwise run as the Compute default account, which is an Editor.
        self.nodes = gcp.serviceaccount.Account(
            "agentlane-gke-nodes",
            account_id="agentlane-gke-nodes",
            display_name="agentlane GKE nodes",
            opts=self.child(),
        )
        gcp.projects.IAMMember(
            "agentlane-gke-nodes",
            project=config.project,
            role="roles/container.defaultNodeServiceAccount",
            member=member(self.nodes),
            opts=self.child(),
        )
        self.register_outputs({})


class WorkloadIdentity(Component):
    """Lets each GKE workload's KSA act as its GCP account (no keys anywhere)."""

    def __init__(
        self,
        name: str,
        config: StackConfig,
        accounts: ServiceAccounts,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        # The workload pool PROJECT.svc.id.goog exists only once the cluster does, so the
        # caller makes this component depend on the cluster.
        super().__init__("WorkloadIdentity", name, config, opts)
        for workload, account in accounts.workloads.items():
            if not workload.on_gke:
                continue
            gcp.serviceaccount.IAMMember(
                f"{workload.account_id}-wi",
                service_account_id=account.name,
                role="roles/iam.workloadIdentityUser",
                member=f"serviceAccount:{config.project}.svc.id.goog[{NAMESPACE}/{workload.ksa}]",
                opts=self.child(),
            )
        self.register_outputs({})
