"""Alert policies for the failure modes that have no other signal (docs/design.md, seed module 16).

The conditions are PromQL over the agentlane_* series the components export and Managed
Prometheus scrapes (scraping.py), and over Cloud Run's own request counts; Cloud Monitoring
stores them as prometheus.googleapis.com/<name>/<kind>. Metric validation is off because the
series exist only after the first scrape, which comes after the first `pulumi up`.

Every alert must also fire when its exporters are gone, not only when they report trouble: a
series that disappears makes `max(x) > 30` or `N - sum(x) > 0` empty, that is silent. So the
shards owned are `sum(x) or vector(0)` (no runner: none owned), and the projector's alert asks
whether one leads (`max(leader) or vector(0)`), which no projector at all answers with 0.

The same alerts are written as a Prometheus rule file (`infra/alerts/agentlane.rules.yml`,
``python -m infra.components.monitoring``) that promtool checks and tests
(`tests/infra/test_alert_rules.py`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_gcp as gcp
import yaml

from ..config import RuntimeConfig, StackConfig
from .base import Component
from .command_service import COMMAND_SERVICE_NAME
from .pubsub import dead_letter_hold_name

__all__ = [
    "RULE_FILE", "Alert", "Monitoring", "alerts", "cloud_run_requests", "metric_type",
    "prometheus_rules", "stack_alerts",
]

#: The rule file for every stack that keeps the default shards and topic (all of them today).
RULE_FILE = Path(__file__).resolve().parents[1] / "alerts" / "agentlane.rules.yml"


def metric_type(name: str, kind: str) -> str:
    """The Cloud Monitoring type of a Prometheus series (what Metrics Explorer shows)."""
    return f"prometheus.googleapis.com/{name}/{kind}"


def cloud_run_requests(service: str, **labels: str) -> str:
    """Cloud Run's request count of ``service`` as a PromQL selector (exported for every
    service, whatever runs in it)."""
    matchers = {"monitored_resource": "cloud_run_revision", "service_name": service, **labels}
    inner = ",".join(f'{k}="{v}"' for k, v in matchers.items())
    return f"run_googleapis_com:request_count{{{inner}}}"


@dataclass(frozen=True)
class Alert:
    key: str
    title: str
    query: str
    duration_s: int
    metric: str
    runbook: str


def alerts(
    *, dead_letter_subscription: str, shards: int, command_service: str,
    max_connections: int = 100,
) -> tuple[Alert, ...]:
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
            "projector-unled",
            "No projector holds the lease: read models and live events have stopped",
            # Every projector process exports agentlane_projector_leader (1 while it leads); no
            # series at all means no projector is running.
            "(max(agentlane_projector_leader) or vector(0)) < 1",
            duration_s=180,
            metric=metric_type("agentlane_projector_leader", "gauge"),
            runbook="kubectl get pods -l component=projector: crash-looping, unschedulable, "
            "scaled to zero, or unable to reach the database? runbooks/projector-lag.md.",
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
            "runs-unrunnable",
            "Runs wait for workflow code no runner has (or whose code no longer replays them)",
            "sum(agentlane_runs_unrunnable) > 0",
            duration_s=900,
            metric=metric_type("agentlane_runs_unrunnable", "gauge"),
            runbook="A deploy dropped or changed the version in-flight runs started on: "
            "runbooks/rollback.md (roll back, or `agentlane runs move-version`).",
        ),
        Alert(
            "shards-unowned",
            "Shards without an owner: their sessions make no progress",
            # Every runner reports the shards it holds; fewer than all of them means some sessions
            # have no owner. With no runner left there is no series at all: owned is then 0.
            f"({shards} - (sum(agentlane_runner_owned_shards) or vector(0))) > 0",
            duration_s=120,
            metric=metric_type("agentlane_runner_owned_shards", "gauge"),
            runbook="Run `agentlane shards`; are runners ready, and is the StatefulSet scaled?",
        ),
        Alert(
            "command-5xx",
            "The command API answers 5xx",
            # Cloud Run's own count: it includes the 5xx of instances that crashed or never
            # started, which the service's /metrics cannot report.
            f'sum(rate({cloud_run_requests(command_service, response_code_class="5xx")}[5m]))'
            f" / sum(rate({cloud_run_requests(command_service)}[5m])) > 0.05",
            duration_s=120,
            metric="run.googleapis.com/request_count",
            runbook="Cloud Run logs of agentlane-command-service: failing readiness (database?), "
            "crashes, or 503 from no instance; runbooks/database-restart.md if Postgres.",
        ),
        Alert(
            "cloudsql-cpu",
            "Cloud SQL CPU is high: appends and reads will slow down",
            f"max({_cloudsql('cpu_utilization')}) > 0.8",
            duration_s=600,
            metric="cloudsql.googleapis.com/database/cpu/utilization",
            runbook="Which statements? Query Insights, pg_stat_statements; a runaway replay "
            "export or rebuild? Scale the tier (infra/README.md) if it is the load.",
        ),
        Alert(
            "cloudsql-disk",
            "Cloud SQL disk is filling up",
            f"max({_cloudsql('disk_utilization')}) > 0.85",
            duration_s=600,
            metric="cloudsql.googleapis.com/database/disk/utilization",
            runbook="Raise database.diskSizeGb (disks grow, never shrink); check WAL retained by "
            "a stuck replication slot or an old transaction (tx-horizon-age).",
        ),
        Alert(
            "cloudsql-connections",
            "Cloud SQL connections near max_connections: new connections will be refused",
            f"max({_cloudsql('postgresql_num_backends')}) > {int(max_connections * 0.8)}",
            duration_s=300,
            metric="cloudsql.googleapis.com/database/postgresql/num_backends",
            runbook="runbooks/too-many-clients.md: which pools grew (agentlane_db_pool_*), "
            "scaled-out replicas, or a leak; infra/connection_budget.py is the stack's budget.",
        ),
        Alert(
            "lb-5xx",
            "The load balancer answers 5xx (the gateway's WebSockets, or Cloud Run behind it)",
            f"sum(rate({_lb_requests('5xx')}[5m])) / sum(rate({_lb_requests()}[5m])) > 0.05",
            duration_s=300,
            metric="loadbalancing.googleapis.com/https/request_count",
            runbook="Backend health of edge-gateway and the serverless NEG; gateway pods ready? "
            "Cloud Armor denials show as 403, not 5xx.",
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


def stack_alerts(runtime: RuntimeConfig, *, max_connections: int = 100) -> tuple[Alert, ...]:
    """The alerts of a stack with this runtime configuration and database."""
    return alerts(
        dead_letter_subscription=dead_letter_hold_name(runtime.topic),
        shards=runtime.shards,
        command_service=COMMAND_SERVICE_NAME,
        max_connections=max_connections,
    )


def _cloudsql(metric: str) -> str:
    """A Cloud SQL system metric as Managed Prometheus names it."""
    return f'cloudsql_googleapis_com:database_{metric}{{monitored_resource="cloudsql_database"}}'


def _lb_requests(code_class: str | None = None) -> str:
    """The external HTTPS load balancer's request count (``5xx``: only those)."""
    code = f',response_code_class="{code_class[0]}00"' if code_class else ""
    return (
        'loadbalancing_googleapis_com:https_request_count{monitored_resource="https_lb_rule"'
        f"{code}}}"
    )


def prometheus_rules(rules: Sequence[Alert]) -> dict[str, Any]:
    """The alerts as a Prometheus rule file (for promtool, or a Prometheus of one's own)."""
    return {
        "groups": [
            {
                "name": "agentlane",
                "rules": [
                    {
                        "alert": alert.key,
                        "expr": alert.query,
                        "for": f"{alert.duration_s}s",
                        "labels": {"severity": "page"},
                        "annotations": {
                            "summary": alert.title,
                            "runbook": alert.runbook,
                            "metric": alert.metric,
                        },
                    }
                    for alert in rules
                ],
            }
        ]
    }


def rule_file_text(rules: Sequence[Alert]) -> str:
    header = "# Generated by `python -m infra.components.monitoring` from alerts(); do not edit.\n"
    return header + yaml.safe_dump(prometheus_rules(rules), sort_keys=False, width=100)


class Monitoring(Component):
    def __init__(
        self,
        name: str,
        config: StackConfig,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("Monitoring", name, config, opts)
        labels = self.labels("monitoring")
        for alert in stack_alerts(
            config.runtime, max_connections=config.database.max_connections
        ):
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
        billing = config.billing
        if billing.account:
            # Spend alerts where the other alerts go; billing admins get the emails as well.
            gcp.billing.Budget(
                "monthly-budget",
                billing_account=billing.account,
                display_name=f"agentlane {config.stack}",
                budget_filter={
                    "projects": [f"projects/{billing.project_number}"],
                    "calendar_period": "MONTH",
                },
                amount={
                    "specified_amount": {
                        "currency_code": billing.currency,
                        "units": str(billing.monthly_amount),
                    }
                },
                threshold_rules=[
                    {"threshold_percent": 0.5},
                    {"threshold_percent": 0.9},
                    {"threshold_percent": 1.0},
                    {"threshold_percent": 1.0, "spend_basis": "FORECASTED_SPEND"},
                ],
                all_updates_rule={
                    "monitoring_notification_channels": list(config.notification_channels),
                    "disable_default_iam_recipients": False,
                },
                opts=self.child(),
            )
        self.register_outputs({})


def main() -> int:
    """Write the rule file of the default runtime configuration (every stack's today)."""
    RULE_FILE.parent.mkdir(parents=True, exist_ok=True)
    RULE_FILE.write_text(rule_file_text(stack_alerts(RuntimeConfig(jwt_audience="", model=""))))
    print(RULE_FILE, file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
