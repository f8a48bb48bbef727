"""Artifact Registry for the one agentlane image, tags immutable (a git sha means one build)."""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp

from ..config import StackConfig
from .base import Component
from .identity import ServiceAccounts, member
from .names import APP

__all__ = ["Registry"]


class Registry(Component):
    def __init__(
        self,
        name: str,
        config: StackConfig,
        accounts: ServiceAccounts,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("Registry", name, config, opts)
        self.repository = gcp.artifactregistry.Repository(
            name,
            repository_id=APP,
            location=config.region,
            format="DOCKER",
            docker_config={"immutable_tags": True},
            labels=self.labels("registry"),
            opts=self.child(),
        )
        gcp.artifactregistry.RepositoryIamMember(
            f"{name}-gke-nodes-reader",
            repository=self.repository.name,
            location=config.region,
            role="roles/artifactregistry.reader",
            member=member(accounts.nodes),
            opts=self.child(),
        )
        self.register_outputs({"repository": self.repository.id})
