"""Alert policies for the failure modes that have no other signal (docs/design.md, seed module 16).

The conditions are PromQL over the agentlane_* series the components export and Managed
Prometheus scrapes (scraping.py); Cloud Monitoring stores them as
prometheus.googleapis.com/<name>/<kind>. Metric validation is off because the series exist only
after the first scrape, which comes after the first `pulumi up`.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from ..config import StackConfig
from .base import Component
from .pubsub import EventBus

__all__ = ["Alert", "Monitoring", "alerts", "metric_type"]


def metric_type(name: str, kind: str) -> str:
    """The Cloud Monitoring type of a Prometheus series (what Metrics Explorer shows)."""
    return f"prometheus.googleapis.com/{name}/{kind}"


@dataclass(frozen=True)
class Alert:
    key: str
    title: str
    query: str
    duration_s: int
    metric: str
    runbook: str


def alerts(dead_letter_subscription: str, shards: int) -> tuple[Alert, ...]:
    """Every alert of a stack; thresholds are where a human should look, not where it broke."""
    return (
        Alert(
            "projector-lag",
            "Projector lag: live events are late",
            "max(agentlane_projector_lag_seconds) > 30",
            duration_s=300,
            metric=metric_type("agentlane_projector_lag_seconds", "gauge"),
            runbook="Is one projector holding the lease and publishing? Check Pub/Sub errors.",
        ),
        Alert(
            "tx-horizon-age",
            "Transaction horizon is old: every tailer waits behind one transaction",
            "max(agentlane_transaction_horizon_age_seconds) > 60",
            duration_s=120,
            metric=metric_type("agentlane_transaction_horizon_age_seconds", "gauge"),
            runbook="Find the oldest xact_start in pg_stat_activity and end that session.",
        ),
        Alert(
            "runs-failing",
            "Runs are failing",
            'sum(rate(agentlane_runs_finished_total{type="Failed"}[5m])) > 0.1',
            duration_s=600,
            metric=metric_type("agentlane_runs_finished_total", "counter"),
            runbook="Read the Failed events' reasons: model 429/5xx, tool errors, budgets.",
        ),
        Alert(
            "shards-unowned",
            "Shards without an owner: their sessions make no progress",
            # Every runner reports the shards it holds; fewer than all of them means some sessions
            # have no owner (no runner alive, or none ready to claim).
            f"({shards} - sum(agentlane_runner_owned_shards)) > 0",
            duration_s=120,
            metric=metric_type("agentlane_runner_owned_shards", "gauge"),
            runbook="Run `agentlane shards`; are runners ready, and is the StatefulSet scaled?",
        ),
        Alert(
            "dead-letters",
            "Events were dead-lettered",
            "max(pubsub_googleapis_com:subscription_num_undelivered_messages{"
            f'monitored_resource="pubsub_subscription",subscription_id="{dead_letter_subscription}"'
            "}) > 0",
            duration_s=60,
            metric="pubsub.googleapis.com/subscription/num_undelivered_messages",
            runbook=f"Pull {dead_letter_subscription} and read why a subscriber kept nacking.",
        ),
    )


class Monitoring(Component):
    def __init__(
        self,
        name: str,
        config: StackConfig,
        bus: EventBus,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("Monitoring", name, config, opts)
        labels = self.labels("monitoring")
        for alert in alerts(bus.dead_letter_hold_name, config.runtime.shards):
            gcp.monitoring.AlertPolicy(
                alert.key,
                display_name=f"agentlane {config.stack}: {alert.title}",
                combiner="OR",
                conditions=[
                    {
                        "display_name": alert.title,
                        "condition_prometheus_query_language": {
                            "query": alert.query,
                            "duration": f"{alert.duration_s}s",
                            "evaluation_interval": "60s",
                            "disable_metric_validation": True,
                        },
                    }
                ],
                documentation={
                    "content": f"{alert.runbook}\n\nMetric: `{alert.metric}`",
                    "mime_type": "text/markdown",
                },
                notification_channels=list(config.notification_channels),
                user_labels=labels,
                opts=self.child(),
            )
        self.register_outputs({})
