"""Names shared by the GCP and Kubernetes halves of the program.

A Workload Identity binding on the GCP side and the Kubernetes service account it trusts must
spell the same namespace and account; both read them from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = [
    "ANCHOR",
    "APP",
    "APP_LOGINS",
    "NAMESPACE",
    "SERVICES",
    "TRACED",
    "WORKLOADS",
    "Workload",
    "blob_bucket_name",
    "gateway_neg_name",
    "secret_id",
]

APP: Final = "agentlane"
NAMESPACE: Final = "agentlane"


@dataclass(frozen=True)
class Workload:
    """One deployable: its `agentlane` subcommand, GCP service account and (on GKE) KSA."""

    component: str
    on_gke: bool

    @property
    def command(self) -> list[str]:
        return [APP, self.component]

    @property
    def account_id(self) -> str:
        return f"{APP}-{self.component}"

    @property
    def ksa(self) -> str:
        return self.component


COMMAND_SERVICE: Final = Workload("command-service", on_gke=False)
RUNNER: Final = Workload("runner", on_gke=True)
PROJECTOR: Final = Workload("projector", on_gke=True)
GATEWAY: Final = Workload("gateway", on_gke=True)
MIGRATE: Final = Workload("migrate", on_gke=True)
# The CronJob that signs the audit trail's anchors (`agentlane replay anchor`).
ANCHOR: Final = Workload("anchor", on_gke=True)
WORKLOADS: Final = (COMMAND_SERVICE, RUNNER, PROJECTOR, GATEWAY, MIGRATE, ANCHOR)
#: The long-running services (the rest are jobs).
SERVICES: Final = (COMMAND_SERVICE, RUNNER, PROJECTOR, GATEWAY)
#: Who logs in to the database as a member of the app role; the auditor role: ANCHOR.
APP_LOGINS: Final = SERVICES
#: Who traces (agentlane.telemetry): the services; the jobs do not.
TRACED: Final = SERVICES


def secret_id(logical: str) -> str:
    """Secret Manager id (and Kubernetes Secret name) of a logical secret."""
    return f"{APP}-{logical}"


def blob_bucket_name(project: str, stack: str) -> str:
    """The blob store's bucket (infra/components/blobs.py); the workloads name it in
    ``AGENTLANE_BLOB_STORE``."""
    return f"{project}-{APP}-blobs-{stack}"


def gateway_neg_name(stack: str) -> str:
    """The standalone NEG GKE creates for the gateway Service, per zone (edge.py reads it)."""
    return f"{APP}-gateway-{stack}"
