"""Prometheus metrics of the workflow engine, on the registry its runner serves."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


class EngineMetrics:
    """The engine's collectors, created on ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.step_attempts = Counter(
            "agentlane_engine_step_attempts_total",
            "Activity attempts run live, by result.",
            ["result"],
            registry=registry,
        )
