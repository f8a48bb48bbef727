"""Anchors of the audit trail: a CronJob signs every stream head into a bucket nobody can edit.

`agentlane replay anchor --out gs://BUCKET/STACK` runs as the anchor workload's IAM login (a
member of the read-only auditor role), signs with the Ed25519 key from Secret Manager and creates
one new object per run. The bucket keeps each object for `anchors.retentionDays` under a
retention policy (locked in prod: then not even the project owner can shorten it or delete an
anchor early), and the workload may only create objects (no overwrite, no delete). An owner who
rewrites history and recomputes the hash chain is caught by `replay verify --anchor` against
any anchor taken before the rewrite (docs/security.md).
"""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s

from ..config import Resources, StackConfig
from .base import Component, WorkloadComponent
from .identity import ServiceAccounts, member
from .names import ANCHOR, APP

__all__ = ["Anchors", "bucket_name"]

SIZE = Resources(cpu="500m", memory="1Gi")
# One run reads every stream head: allow it the better part of an hour, never two at once.
RUN_DEADLINE_SECONDS = 3000


def bucket_name(config: StackConfig) -> str:
    return f"{config.project}-{APP}-anchors-{config.stack}"


class Anchors(WorkloadComponent):
    def __init__(
        self,
        name: str,
        config: StackConfig,
        provider: k8s.Provider,
        accounts: ServiceAccounts,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("Anchors", name, config, ANCHOR, provider, opts)
        cfg = config.anchors
        self.bucket = gcp.storage.Bucket(
            "anchors",
            name=bucket_name(config),
            location=config.region,
            uniform_bucket_level_access=True,
            public_access_prevention="enforced",
            retention_policy={
                "retention_period": str(cfg.retention_days * 86400),
                "is_locked": cfg.lock_retention,
            },
            force_destroy=False,
            labels=self.labels(ANCHOR.component),
            opts=Component.child(self),  # a GCP resource: not through the cluster's provider
        )
        # Create only: objectCreator cannot delete or overwrite (an overwrite needs delete).
        gcp.storage.BucketIAMMember(
            "anchors-writer",
            bucket=self.bucket.name,
            role="roles/storage.objectCreator",
            member=member(accounts.workloads[ANCHOR]),
            opts=Component.child(self),
        )
        self.cron_job = self.scheduled_job(
            "anchors", "agentlane-anchor", cfg.schedule,
            [APP, "replay", "anchor", "--out", f"gs://{bucket_name(config)}/{config.stack}"],
            SIZE, deadline_s=RUN_DEADLINE_SECONDS, depends_on=[self.bucket],
        )
        # What an operator runs in a deployed stack, read-only, as the auditor (runbooks/).
        self.verify = self.on_demand_job(
            "verify", "agentlane-verify", [APP, "replay", "verify"], SIZE,
            deadline_s=RUN_DEADLINE_SECONDS,
        )
        self.shards = self.on_demand_job(
            "shards", "agentlane-shards", [APP, "shards"], SIZE, deadline_s=300
        )
        self.register_outputs({"bucket": self.bucket.name})
