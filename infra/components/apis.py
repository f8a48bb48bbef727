"""The Google APIs the stack uses, enabled before anything else is created."""

from __future__ import annotations

import pulumi_gcp as gcp

from ..config import StackConfig
from .base import Component

__all__ = ["Apis"]

SERVICES = (
    "artifactregistry.googleapis.com",
    "billingbudgets.googleapis.com",
    "cloudtrace.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "compute.googleapis.com",
    "container.googleapis.com",
    "dns.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "servicenetworking.googleapis.com",
    "sqladmin.googleapis.com",
    "storage.googleapis.com",
)


class Apis(Component):
    def __init__(self, name: str, config: StackConfig) -> None:
        super().__init__("Apis", name, config)
        self.services = [
            gcp.projects.Service(
                service.split(".")[0],
                project=config.project,
                service=service,
                # Another stack in the same project may still need the API.
                disable_on_destroy=False,
                opts=self.child(),
            )
            for service in SERVICES
        ]
        self.register_outputs({})
