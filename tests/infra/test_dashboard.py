"""The stack's dashboard: one per stack, every chart reading series that exist, laid out on the
grid without overlaps, each component's golden signals present."""

from __future__ import annotations

import json
import re

from prometheus_client import CollectorRegistry

from infra.components.dashboard import GRID_COLUMNS
from tests.infra.infra_resources import StackRun

DASHBOARD = "gcp:monitoring/dashboard:Dashboard"
#: Series a component exports as several samples, named by suffix.
SUFFIXES = ("_total", "_bucket", "_sum", "_count")


def exported_families() -> set[str]:
    """Every metric family a component process exports (its pools' statistics included)."""
    from agentlane.pool_metrics import PoolCollector
    from command_service.metrics import CommandServiceMetrics
    from gateway.metrics import GatewayMetrics
    from projector.metrics import ProjectorMetrics
    from runners.engine._metrics import EngineMetrics
    from runners.metrics import RunnerMetrics

    registry = CollectorRegistry()
    for metrics in (
        CommandServiceMetrics, GatewayMetrics, ProjectorMetrics, RunnerMetrics, EngineMetrics
    ):
        metrics(registry)
    registry.register(PoolCollector())
    return {family.name for family in registry.collect()}


def family(series: str) -> str:
    for suffix in SUFFIXES:
        if series.endswith(suffix):
            return series.removesuffix(suffix)
    return series


def layout(run: StackRun) -> dict:
    (dashboard,) = run.of_type(DASHBOARD)
    return json.loads(dashboard.inputs["dashboardJson"])


def queries(board: dict) -> list[str]:
    return [
        data["timeSeriesQuery"]["prometheusQuery"]
        for tile in board["mosaicLayout"]["tiles"]
        for data in tile["widget"].get("xyChart", {}).get("dataSets", [])
    ]


def test_every_chart_reads_series_a_component_exports(run: StackRun) -> None:
    read = {
        family(name)
        for query in queries(layout(run))
        for name in re.findall(r"\bagentlane_[a-z_]+", query)
    }
    exported = exported_families()
    assert read and read <= exported, read - exported
    # The golden signals and the operator's questions of the issue, each on the board.
    for needed in (
        "agentlane_http_requests",  # command service: traffic and errors
        "agentlane_http_request_duration_seconds",  # latency
        "agentlane_gateway_sockets",
        "agentlane_runner_owned_shards",
        "agentlane_projector_lag_seconds",
        "agentlane_transaction_horizon_age_seconds",
        "agentlane_runs_finished",
        "agentlane_model_tokens",
        "agentlane_db_pool_requests_waiting",
    ):
        assert needed in read, needed


def test_tiles_fit_the_grid_without_overlapping(run: StackRun) -> None:
    board = layout(run)
    assert board["displayName"] == f"agentlane {run.stack}"
    taken: set[tuple[int, int]] = set()
    for tile in board["mosaicLayout"]["tiles"]:
        assert 0 <= tile["xPos"] and tile["xPos"] + tile["width"] <= GRID_COLUMNS, tile
        cells = {
            (x, y)
            for x in range(tile["xPos"], tile["xPos"] + tile["width"])
            for y in range(tile["yPos"], tile["yPos"] + tile["height"])
        }
        assert not cells & taken, tile
        taken |= cells


def test_the_shard_chart_counts_a_cell_without_runners_as_owning_none(run: StackRun) -> None:
    owned = [q for q in queries(layout(run)) if "agentlane_runner_owned_shards" in q]
    assert owned == ["sum(agentlane_runner_owned_shards) or vector(0)"]
