"""The blob store: a bucket of large event values (tool results, answers, messages) kept by the
SHA-256 of their bytes, and the CronJob that deletes the ones no event references.

Writers (command service, gateway, runners) may create, read and touch objects (a custom role:
`storage.objects.create`, `get`, `update`), never delete or list them. Deleting is the collector's
alone: `agentlane blobs gc` runs daily as the auditor workload (it reads `agent_event_blobs`,
which the auditor role may, and nothing else of the database). The bucket's retention policy is
one day, the collector's grace period, so even the collector cannot delete a blob in its first day
(locked in prod, as the policy pack wants): a value whose event is still being appended is never
collected, whatever the collector is told.
"""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s

from ..config import Resources, StackConfig
from .base import Component, WorkloadComponent
from .identity import ServiceAccounts, member
from .names import ANCHOR, APP, COMMAND_SERVICE, GATEWAY, RUNNER, blob_bucket_name

__all__ = ["BLOB_WRITERS", "BlobStore"]

#: The workloads that write and read blobs (the collector runs as ANCHOR).
BLOB_WRITERS = (COMMAND_SERVICE, GATEWAY, RUNNER)
#: One day: the collector's default grace period, enforced by the bucket itself.
RETENTION_SECONDS = 86400
WRITER_PERMISSIONS = ("storage.objects.create", "storage.objects.get", "storage.objects.update")
SIZE = Resources(cpu="250m", memory="512Mi")
SCHEDULE = "17 3 * * *"  # daily, off the hour


class BlobStore(WorkloadComponent):
    def __init__(
        self,
        name: str,
        config: StackConfig,
        provider: k8s.Provider,
        accounts: ServiceAccounts,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("BlobStore", name, config, ANCHOR, provider, opts)
        gcp_child = Component.child(self)  # GCP resources: not through the cluster's provider
        self.bucket = gcp.storage.Bucket(
            "blobs",
            name=blob_bucket_name(config.project, config.stack),
            location=config.region,
            uniform_bucket_level_access=True,
            public_access_prevention="enforced",
            retention_policy={
                "retention_period": str(RETENTION_SECONDS),
                "is_locked": config.stack == "prod",
            },
            force_destroy=False,
            labels=self.labels("blobs"),
            # The only copy of large values the log references: a destroy leaves it behind
            # (infra/README.md, teardown), as it does the final export.
            opts=pulumi.ResourceOptions.merge(
                gcp_child, pulumi.ResourceOptions(retain_on_delete=True)
            ),
        )
        self.writer_role = gcp.projects.IAMCustomRole(
            "blob-writer",
            project=config.project,
            role_id=f"{APP}BlobWriter",
            title="agentlane blob writer",
            description="Create, read and touch blobs; never list or delete them.",
            permissions=list(WRITER_PERMISSIONS),
            opts=gcp_child,
        )
        for workload in BLOB_WRITERS:
            gcp.storage.BucketIAMMember(
                f"blobs-{workload.component}",
                bucket=self.bucket.name,
                role=self.writer_role.name,
                member=member(accounts.workloads[workload]),
                opts=gcp_child,
            )
        # The collector lists and deletes; it reads objects too (replay verify checks them).
        gcp.storage.BucketIAMMember(
            "blobs-collector",
            bucket=self.bucket.name,
            role="roles/storage.objectUser",
            member=member(accounts.workloads[ANCHOR]),
            opts=gcp_child,
        )
        self.collector = self.scheduled_job(
            "blobs-gc", "agentlane-blobs-gc", SCHEDULE, [APP, "blobs", "gc"], SIZE,
            deadline_s=3000, depends_on=[self.bucket],
        )
        self.register_outputs({"bucket": self.bucket.name})
