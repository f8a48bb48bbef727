"""The base of every component: children inherit the component's explicit dependencies.

Pulumi does not pass a component's `depends_on` to its children, so a component created after
the project's APIs would still let its resources race the API enablement; `child()` fixes that.
`WorkloadComponent` is the base of the components that run one workload on GKE.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from ..config import Resources, StackConfig
from .labels import labels
from .names import Workload
from .pod import container, metadata, pod_template, secret_file_volumes, selector
from .scraping import pod_monitoring
from .workload_env import env_for

__all__ = ["ON_DEMAND_SCHEDULE", "Component", "WorkloadComponent"]

#: The schedule of a suspended CronJob (required by the API, never used while suspended).
ON_DEMAND_SCHEDULE = "0 0 1 1 *"


class Component(pulumi.ComponentResource):
    def __init__(
        self,
        type_name: str,
        name: str,
        config: StackConfig,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(f"agentlane:infra:{type_name}", name, None, opts)
        self._config = config
        depends = opts.depends_on if opts else None
        if isinstance(depends, pulumi.Resource):
            depends = [depends]
        self._depends_on: list[pulumi.Resource] = (
            [d for d in depends if isinstance(d, pulumi.Resource)]
            if isinstance(depends, Sequence)
            else []
        )

    def child(
        self,
        *,
        depends_on: Sequence[pulumi.Resource] = (),
        provider: pulumi.ProviderResource | None = None,
    ) -> pulumi.ResourceOptions:
        """Options for a child resource: parented here, after the component's dependencies."""
        return pulumi.ResourceOptions(
            parent=self, depends_on=[*self._depends_on, *depends_on], provider=provider
        )

    def labels(self, component: str) -> dict[str, str]:
        return labels(
            env=self._config.stack, component=component, tenant_tier=self._config.tenant_tier
        )


class WorkloadComponent(Component):
    """A component running one workload on GKE: every child goes through the cluster's provider
    and carries the workload's labels, and pods, rollouts and budgets are shaped alike."""

    def __init__(
        self,
        type_name: str,
        name: str,
        config: StackConfig,
        workload: Workload,
        provider: k8s.Provider,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(type_name, name, config, opts)
        self._workload = workload
        self._provider = provider
        self.workload_labels = self.labels(workload.component)

    def child(
        self,
        *,
        depends_on: Sequence[pulumi.Resource] = (),
        provider: pulumi.ProviderResource | None = None,
    ) -> pulumi.ResourceOptions:
        """As `Component.child`; the provider defaults to the cluster's, the only one used here."""
        return super().child(
            depends_on=depends_on, provider=provider if provider is not None else self._provider
        )

    def metadata(self, name: str, **extra: Any) -> dict[str, Any]:
        """Object metadata in the namespace, with the workload's labels."""
        return metadata(name, self.workload_labels, **extra)

    def pod_template(
        self,
        size: Resources,
        *,
        grace_seconds: int,
        serving: bool = True,
        restart_policy: str | None = None,
        spread: bool = True,
    ) -> dict[str, Any]:
        """A pod of the workload's one container (see `pod.container` for `serving`)."""
        return pod_template(
            self._workload,
            self.workload_labels,
            [container(self._workload, self._config, size, serving=serving)],
            grace_seconds=grace_seconds,
            restart_policy=restart_policy,
            spread=spread,
            volumes=secret_file_volumes(env_for(self._workload, self._config)),
        )

    def job_pod(self, size: Resources, command: list[str]) -> dict[str, Any]:
        """A pod that runs ``command`` to completion once (no probes, no restarts, no spread)."""
        template = self.pod_template(
            size, grace_seconds=30, serving=False, restart_policy="Never", spread=False
        )
        template["spec"]["containers"][0]["command"] = command
        return template

    def on_demand_job(
        self,
        resource_name: str,
        object_name: str,
        command: list[str],
        size: Resources,
        *,
        deadline_s: int,
    ) -> k8s.batch.v1.CronJob:
        """An operator's command as a suspended CronJob: it never runs by itself, and
        `kubectl create job --from=cronjob/OBJECT_NAME NAME` runs it once with this workload's
        identity and database login (no keys, no database port opened to anyone)."""
        return k8s.batch.v1.CronJob(
            resource_name,
            metadata=self.metadata(object_name),
            spec={
                "schedule": ON_DEMAND_SCHEDULE,
                "suspend": True,
                "job_template": {
                    "spec": {
                        "backoff_limit": 0,
                        "active_deadline_seconds": deadline_s,
                        "ttl_seconds_after_finished": 7 * 86400,
                        "template": self.job_pod(size, command),
                    }
                },
            },
            opts=self.child(),
        )

    def scheduled_job(
        self,
        resource_name: str,
        object_name: str,
        schedule: str,
        command: list[str],
        size: Resources,
        *,
        deadline_s: int,
        depends_on: Sequence[pulumi.Resource] = (),
    ) -> k8s.batch.v1.CronJob:
        """A command run on `schedule` with this workload's identity: never two at once, retried
        twice, the last three runs' pods kept for their logs."""
        return k8s.batch.v1.CronJob(
            resource_name,
            metadata=self.metadata(object_name),
            spec={
                "schedule": schedule,
                "concurrency_policy": "Forbid",
                "starting_deadline_seconds": 600,
                "successful_jobs_history_limit": 3,
                "failed_jobs_history_limit": 3,
                "job_template": {
                    "spec": {
                        "backoff_limit": 2,
                        "active_deadline_seconds": deadline_s,
                        "template": self.job_pod(size, command),
                    }
                },
            },
            opts=self.child(depends_on=depends_on),
        )

    def rolling_deployment(
        self,
        resource_name: str,
        object_name: str,
        size: Resources,
        *,
        replicas: int | None,
        max_unavailable: int,
        grace_seconds: int,
    ) -> k8s.apps.v1.Deployment:
        """A rolling Deployment that surges one pod; `replicas=None` leaves the count to an HPA
        (a count here would be reset by every `pulumi up`)."""
        spec: dict[str, Any] = {} if replicas is None else {"replicas": replicas}
        spec |= {
            "selector": {"match_labels": selector(self._workload)},
            "strategy": {
                "type": "RollingUpdate",
                "rolling_update": {"max_unavailable": max_unavailable, "max_surge": 1},
            },
            "template": self.pod_template(size, grace_seconds=grace_seconds),
        }
        return k8s.apps.v1.Deployment(
            resource_name, metadata=self.metadata(object_name), spec=spec, opts=self.child()
        )

    def serve(self, resource_name: str, object_name: str, **budget: int | str) -> None:
        """What every serving workload has beside its pods: a PodDisruptionBudget (`budget` is
        its `min_available` or `max_unavailable`) and the scrape config of its `/metrics`."""
        k8s.policy.v1.PodDisruptionBudget(
            resource_name,
            metadata=self.metadata(object_name),
            spec={**budget, "selector": {"match_labels": selector(self._workload)}},
            opts=self.child(),
        )
        pod_monitoring(self._workload, self.workload_labels, self.child())
