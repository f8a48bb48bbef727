"""The migration Job: `agentlane migrate` runs to completion before any workload rolls, as the
schema's owner, and grants each workload's IAM login its role."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import pulumi
import pulumi_kubernetes as k8s

from ..config import Resources, StackConfig
from .base import WorkloadComponent
from .names import APP, MIGRATE

__all__ = ["Migration"]

SIZE = Resources(cpu="500m", memory="512Mi")


class Migration(WorkloadComponent):
    def __init__(
        self,
        name: str,
        config: StackConfig,
        provider: k8s.Provider,
        app_logins: Sequence[pulumi.Input[str]],
        audit_logins: Sequence[pulumi.Input[str]],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("Migration", name, config, MIGRATE, provider, opts)
        # One Job per image: a Job's pod template is immutable, and a new name makes Pulumi
        # create (and await) a fresh run for every release instead of patching the old one.
        release = hashlib.sha256(config.image.encode()).hexdigest()[:10]
        # The migration (the owner) makes each workload's IAM login a member of its role.
        template = self.job_pod(SIZE, [
            *MIGRATE.command,
            *(arg for login in app_logins for arg in ("--app-login", login)),
            *(arg for login in audit_logins for arg in ("--audit-login", login)),
        ])
        self.job = k8s.batch.v1.Job(
            MIGRATE.component,
            metadata=self.metadata(f"agentlane-migrate-{release}"),
            spec={
                "backoff_limit": 3,
                "active_deadline_seconds": 900,
                "template": template,
            },
            opts=self.child(),
        )
        # The one operator command that writes (stream heads, run index, read models), as the
        # owner: after a restore, or when verify finds a derived table wrong (runbooks/).
        self.rebuild = self.on_demand_job(
            "rebuild", "agentlane-rebuild", [APP, "replay", "rebuild"], SIZE, deadline_s=3600
        )
        self.register_outputs({"job": self.job.metadata.name})
