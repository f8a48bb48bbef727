"""Secret Manager secrets and who may read each one (per secret, never project-wide)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pulumi
import pulumi_gcp as gcp

from ..config import StackConfig
from .base import Component
from .identity import ServiceAccounts, member
from .names import Workload, secret_id

__all__ = ["Secrets"]


class Secrets(Component):
    """One secret per logical value; `versions[logical]` feeds the Kubernetes projection."""

    def __init__(
        self,
        name: str,
        config: StackConfig,
        values: Mapping[str, pulumi.Input[str]],
        readers: Mapping[str, Sequence[Workload]],
        accounts: ServiceAccounts,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("Secrets", name, config, opts)
        self.versions: dict[str, gcp.secretmanager.SecretVersion] = {}
        for logical, value in values.items():
            secret = gcp.secretmanager.Secret(
                secret_id(logical),
                secret_id=secret_id(logical),
                replication={"auto": {}},
                deletion_protection=config.deletion_protection,
                labels=self.labels("secrets"),
                opts=self.child(),
            )
            self.versions[logical] = gcp.secretmanager.SecretVersion(
                secret_id(logical),
                secret=secret.id,
                secret_data=pulumi.Output.secret(value),
                opts=self.child(),
            )
            for workload in readers.get(logical, ()):
                gcp.secretmanager.SecretIamMember(
                    f"{secret_id(logical)}-{workload.component}",
                    secret_id=secret.id,
                    role="roles/secretmanager.secretAccessor",
                    member=member(accounts.workloads[workload]),
                    opts=self.child(),
                )
        self.register_outputs({})
