"""Prometheus metrics of the projector (default registry, served on /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

LAG_EVENTS = Gauge(
    "agentlane_projector_lag_events",
    "Committed events after the checkpoint",
    ["checkpoint"],
)
LAG_SECONDS = Gauge(
    "agentlane_projector_lag_seconds",
    "Age of the oldest event after the checkpoint (database clock)",
    ["checkpoint"],
)
BATCH_SIZE = Histogram(
    "agentlane_projector_batch_size",
    "Events per batch",
    ["checkpoint"],
    buckets=(1, 5, 10, 50, 100, 250, 500, 1000, 2500, 5000),
)
EVENTS = Counter(
    "agentlane_projector_events_total",
    "Events handled (applied to read models or published)",
    ["checkpoint"],
)
# Counted once per terminal event, when the read models apply it (they do so exactly once while
# this process leads); the alert on failing runs watches the rate of type="Failed".
RUNS_FINISHED = Counter(
    "agentlane_runs_finished_total", "Runs that reached a terminal event, by type", ["type"]
)
PUBLISHED = Counter("agentlane_projector_published_total", "Messages published to Pub/Sub")
PUBLISH_ERRORS = Counter(
    "agentlane_projector_publish_errors_total", "Publish batches that failed and were rewound"
)
IS_LEADER = Gauge("agentlane_projector_leader", "1 while this process holds the projector lease")
HORIZON_AGE = Gauge(
    "agentlane_transaction_horizon_age_seconds",
    "Age of the oldest running transaction: every gap-safe tailer waits behind it",
)
