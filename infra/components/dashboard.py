"""The Cloud Monitoring dashboard of a stack: the golden signals of each component, the lag and
horizon every tailer waits behind, shard ownership, run outcomes and token usage per model.

Every chart is PromQL over the agentlane_* series Managed Prometheus collects (the GKE workloads'
PodMonitoring, the command service's sidecar) or over Cloud Run's own request counts, the same
sources as the alerts (monitoring.py); `tests/infra/test_dashboard.py` checks every series a
chart reads is one a component exports.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_gcp as gcp

from ..config import StackConfig
from .base import Component
from .command_service import COMMAND_SERVICE_NAME
from .monitoring import cloud_run_requests

__all__ = ["Chart", "Dashboard", "Section", "dashboard_json", "sections"]

#: Cloud Monitoring's mosaic grid is 48 columns wide.
GRID_COLUMNS = 48
CHART_WIDTH = 16
CHART_HEIGHT = 16
HEADER_HEIGHT = 4


@dataclass(frozen=True)
class Chart:
    title: str
    #: (legend, PromQL) per line.
    lines: tuple[tuple[str, str], ...]
    unit: str = ""


@dataclass(frozen=True)
class Section:
    title: str
    charts: tuple[Chart, ...]


def _rate(expr: str) -> str:
    return f"rate({expr}[5m])"


def _p(quantile: float, histogram: str) -> str:
    return f"histogram_quantile({quantile}, sum by (le) ({_rate(histogram + '_bucket')}))"


def sections(*, shards: int, command_service: str) -> tuple[Section, ...]:
    """What the dashboard shows, top to bottom."""
    five_xx = cloud_run_requests(command_service, response_code_class="5xx")
    return (
        Section("Runs and tokens", (
            Chart("Runs accepted and finished, per second", (
                ("accepted", f"sum({_rate('agentlane_runs_accepted_total')})"),
                ("{{type}}", f"sum by (type) ({_rate('agentlane_runs_finished_total')})"),
            ), "1/s"),
            Chart("Model tokens per second, by model", (
                ("{{model}} {{kind}}",
                 f"sum by (model, kind) ({_rate('agentlane_model_tokens_total')})"),
            ), "1/s"),
            Chart("Spend per hour, by model (price table currency)", (
                ("{{model}}",
                 f"sum by (model) ({_rate('agentlane_model_cost_micros_total')}) * 3600 / 1e6"),
            ), "1/h"),
            Chart("Step attempts per second, by result", (
                ("{{result}}",
                 f"sum by (result) ({_rate('agentlane_engine_step_attempts_total')})"),
            ), "1/s"),
        )),
        Section("Command service (Cloud Run)", (
            Chart("Requests per second, by status", (
                ("{{status}}", f"sum by (status) ({_rate('agentlane_http_requests_total')})"),
            ), "1/s"),
            Chart("Latency to the first byte", (
                ("p50", _p(0.5, "agentlane_http_request_duration_seconds")),
                ("p99", _p(0.99, "agentlane_http_request_duration_seconds")),
            ), "s"),
            Chart("Saturation and errors", (
                ("in flight", "sum(agentlane_http_inflight_requests)"),
                ("refused per second (429/503)",
                 f"sum({_rate('agentlane_admission_rejections_total')})"),
                ("Cloud Run 5xx per second", f"sum({_rate(five_xx)})"),
            )),
        )),
        Section("Gateway (WebSockets)", (
            Chart("Open sockets", (("sockets", "sum(agentlane_gateway_sockets)"),)),
            Chart("Connects and closes per second", (
                ("connects", f"sum({_rate('agentlane_gateway_connects_total')})"),
                ("close {{code}}", f"sum by (code) ({_rate('agentlane_gateway_closes_total')})"),
            ), "1/s"),
            Chart("Open to ready (replay), live events", (
                ("replay p99", _p(0.99, "agentlane_gateway_replay_seconds")),
                ("live events per second",
                 f"sum({_rate('agentlane_gateway_live_events_total')})"),
            )),
        )),
        Section("Runners", (
            Chart("Shards owned", (
                ("owned", "sum(agentlane_runner_owned_shards) or vector(0)"),
                ("all", f"vector({shards})"),
            )),
            Chart("Oldest due work and lease renewal", (
                ("oldest due work", "max(agentlane_oldest_due_work_age_seconds)"),
                ("lease renewal lag", "max(agentlane_lease_renewal_lag_seconds)"),
            ), "s"),
            Chart("In flight, fenced appends, database errors", (
                ("runs in flight", "sum(agentlane_runner_runs_in_flight)"),
                ("fenced appends per second",
                 f"sum({_rate('agentlane_runner_fenced_appends_total')})"),
                ("database errors per second",
                 f"sum({_rate('agentlane_runner_database_errors_total')})"),
            )),
        )),
        Section("Projector and the log", (
            Chart("Lag behind the log", (
                ("{{checkpoint}}", "max by (checkpoint) (agentlane_projector_lag_seconds)"),
                ("transaction horizon age", "max(agentlane_transaction_horizon_age_seconds)"),
            ), "s"),
            Chart("Events handled per second", (
                ("{{checkpoint}}",
                 f"sum by (checkpoint) ({_rate('agentlane_projector_events_total')})"),
                ("publish errors", f"sum({_rate('agentlane_projector_publish_errors_total')})"),
            ), "1/s"),
            Chart("Leading projectors", (
                ("leading", "sum(agentlane_projector_leader) or vector(0)"),
            )),
        )),
        Section("Database connections", (
            Chart("Connections lent and idle, by pool", (
                ("{{pool}} held", "sum by (pool) (agentlane_db_pool_connections)"),
                ("{{pool}} idle", "sum by (pool) (agentlane_db_pool_connections_idle)"),
            )),
            Chart("Requests waiting for a connection", (
                ("{{pool}}", "sum by (pool) (agentlane_db_pool_requests_waiting)"),
            )),
            Chart("Time waiting for a connection, per second", (
                ("{{pool}}",
                 f"sum by (pool) ({_rate('agentlane_db_pool_request_wait_seconds_total')})"),
            ), "s/s"),
        )),
    )


def _chart_widget(chart: Chart) -> dict[str, Any]:
    return {
        "title": chart.title,
        "xyChart": {
            "dataSets": [
                {
                    "timeSeriesQuery": {
                        "prometheusQuery": query,
                        **({"unitOverride": chart.unit} if chart.unit else {}),
                    },
                    "plotType": "LINE",
                    "legendTemplate": legend,
                }
                for legend, query in chart.lines
            ],
            "yAxis": {"scale": "LINEAR"},
        },
    }


def dashboard_json(stack: str, parts: tuple[Section, ...]) -> dict[str, Any]:
    """The dashboard as Cloud Monitoring's JSON: a header row per section, its charts beneath."""
    tiles: list[dict[str, Any]] = []
    y = 0
    for section in parts:
        tiles.append({
            "xPos": 0, "yPos": y, "width": GRID_COLUMNS, "height": HEADER_HEIGHT,
            "widget": {"text": {"content": f"## {section.title}", "format": "MARKDOWN"}},
        })
        y += HEADER_HEIGHT
        for index, chart in enumerate(section.charts):
            x = (index * CHART_WIDTH) % GRID_COLUMNS
            row = (index * CHART_WIDTH) // GRID_COLUMNS
            tiles.append({
                "xPos": x, "yPos": y + row * CHART_HEIGHT,
                "width": CHART_WIDTH, "height": CHART_HEIGHT,
                "widget": _chart_widget(chart),
            })
        rows = -(-len(section.charts) * CHART_WIDTH // GRID_COLUMNS)
        y += rows * CHART_HEIGHT
    return {
        "displayName": f"agentlane {stack}",
        "mosaicLayout": {"columns": GRID_COLUMNS, "tiles": tiles},
    }


class Dashboard(Component):
    def __init__(
        self,
        name: str,
        config: StackConfig,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("Dashboard", name, config, opts)
        layout = dashboard_json(
            config.stack,
            sections(shards=config.runtime.shards, command_service=COMMAND_SERVICE_NAME),
        )
        self.dashboard = gcp.monitoring.Dashboard(
            name, dashboard_json=json.dumps(layout), opts=self.child()
        )
        self.register_outputs({})
