"""Namespace, Kubernetes service accounts, pod-read RBAC, the projected secrets and the
database's ConfigMap."""

from __future__ import annotations

from collections.abc import Mapping

import pulumi
import pulumi_kubernetes as k8s

from ..config import StackConfig
from .base import Component
from .identity import ServiceAccounts
from .names import NAMESPACE, RUNNER, secret_id
from .pod import metadata
from .workload_env import DATABASE_CONFIG, SECRET_KEYS

__all__ = ["KubeBase"]


class KubeBase(Component):
    def __init__(
        self,
        name: str,
        config: StackConfig,
        provider: k8s.Provider,
        accounts: ServiceAccounts,
        secret_values: Mapping[str, pulumi.Input[str]],
        database_config: Mapping[str, pulumi.Input[str]],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("KubeBase", name, config, opts)
        labels = self.labels("kubernetes")
        self.namespace = k8s.core.v1.Namespace(
            NAMESPACE,
            metadata={
                "name": NAMESPACE,
                # Admission rejects any pod that could run as root or escalate.
                "labels": {**labels, "pod-security.kubernetes.io/enforce": "restricted"},
            },
            opts=self.child(provider=provider),
        )
        in_namespace = [self.namespace]
        self.service_accounts = [
            k8s.core.v1.ServiceAccount(
                f"ksa-{workload.ksa}",
                metadata=metadata(
                    workload.ksa,
                    self.labels(workload.component),
                    annotations={"iam.gke.io/gcp-service-account": account.email},
                ),
                opts=self.child(provider=provider, depends_on=in_namespace),
            )
            for workload, account in accounts.workloads.items()
            if workload.on_gke
        ]
        pod_reader = k8s.rbac.v1.Role(
            "pod-reader",
            metadata=metadata("pod-reader", labels),
            rules=[{"api_groups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}],
            opts=self.child(provider=provider, depends_on=in_namespace),
        )
        k8s.rbac.v1.RoleBinding(
            "runner-pod-reader",
            metadata=metadata("runner-pod-reader", labels),
            role_ref={
                "api_group": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": pod_reader.metadata.name,
            },
            subjects=[{"kind": "ServiceAccount", "name": RUNNER.ksa, "namespace": NAMESPACE}],
            opts=self.child(provider=provider, depends_on=in_namespace),
        )
        # Secret Manager stays the source of truth; pods read the same values from these.
        self.secrets = [
            k8s.core.v1.Secret(
                f"secret-{logical}",
                metadata=metadata(secret_id(logical), labels),
                type="Opaque",
                string_data={SECRET_KEYS[logical]: pulumi.Output.secret(value)},
                opts=self.child(provider=provider, depends_on=in_namespace),
            )
            for logical, value in secret_values.items()
        ]
        # Nothing secret: each IAM workload's URL (it has no password) and the database's CA.
        self.database_config = k8s.core.v1.ConfigMap(
            "database-config",
            metadata=metadata(DATABASE_CONFIG, labels),
            data=dict(database_config),
            opts=self.child(provider=provider, depends_on=in_namespace),
        )
        self.ready: list[pulumi.Resource] = [
            *self.service_accounts, *self.secrets, self.database_config
        ]
        self.register_outputs({})
