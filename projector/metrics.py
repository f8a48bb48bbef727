"""Prometheus metrics of the projector, on the registry the process serves at ``/metrics``."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ProjectorMetrics:
    """The projector's collectors, created on ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.lag_events = Gauge(
            "agentlane_projector_lag_events",
            "Committed events after the checkpoint",
            ["checkpoint"],
            registry=registry,
        )
        self.lag_seconds = Gauge(
            "agentlane_projector_lag_seconds",
            "Age of the oldest event after the checkpoint (database clock)",
            ["checkpoint"],
            registry=registry,
        )
        self.batch_size = Histogram(
            "agentlane_projector_batch_events",
            "Events per batch",
            ["checkpoint"],
            buckets=(1, 5, 10, 50, 100, 250, 500, 1000, 2500, 5000),
            registry=registry,
        )
        self.events = Counter(
            "agentlane_projector_events_total",
            "Events handled (applied to read models or published)",
            ["checkpoint"],
            registry=registry,
        )
        # Counted once per terminal event, when the read models apply it (they do so exactly once
        # while this process leads); the alert on failing runs watches the rate of type="Failed".
        self.runs_finished = Counter(
            "agentlane_runs_finished_total",
            "Runs that reached a terminal event, by type",
            ["type"],
            registry=registry,
        )
        # Counted like runs_finished: once per Usage event, when the read models apply it.
        self.model_tokens = Counter(
            "agentlane_model_tokens_total",
            "Model tokens recorded by Usage events, by model and kind (input, output, "
            "cached_input; cached input is part of input)",
            ["model", "kind"],
            registry=registry,
        )
        self.model_cost = Counter(
            "agentlane_model_cost_micros_total",
            "What priced model calls cost (Usage events' costMicros), in millionths of the price "
            "table's currency, by model",
            ["model"],
            registry=registry,
        )
        self.published = Counter(
            "agentlane_projector_published_total", "Messages published to Pub/Sub",
            registry=registry,
        )
        self.publish_errors = Counter(
            "agentlane_projector_publish_errors_total",
            "Publish batches that failed and were rewound",
            registry=registry,
        )
        self.is_leader = Gauge(
            "agentlane_projector_leader", "1 while this process holds the projector lease",
            registry=registry,
        )
        self.horizon_age = Gauge(
            "agentlane_transaction_horizon_age_seconds",
            "Age of the oldest running transaction: every gap-safe tailer waits behind it",
            registry=registry,
        )
