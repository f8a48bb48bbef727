"""Prometheus metrics of the runner: progress, not just liveness.

Module-level collectors on the default registry (what ``/metrics`` serves); per-runner series are
labelled by the runner's stable name so several runners in one process (``agentlane dev``) keep
apart. The shard-level progress gauge is labelled by shard only: a shard has one owner at a time,
and an owner removes its series when it lets the shard go.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

OLDEST_DUE_WORK_AGE = Gauge(
    "agentlane_oldest_due_work_age_seconds",
    "Age of the oldest due work on an owned shard that no advance is handling yet "
    "(a run waiting to start or resume, a due timer); 0 when none is waiting",
    ["shard"],
)
LEASE_RENEWAL_LAG = Gauge(
    "agentlane_lease_renewal_lag_seconds",
    "Seconds since this runner last renewed all of its leases (healthy: about TTL/3 or less)",
    ["runner"],
)
OWNED_SHARDS = Gauge("agentlane_runner_owned_shards", "Shards this runner holds", ["runner"])
TARGET_SHARDS = Gauge(
    "agentlane_runner_target_shards", "This runner's fair share: ceil(shards / live runners)",
    ["runner"],
)
RUNS_IN_FLIGHT = Gauge(
    "agentlane_runner_runs_in_flight", "Runs being advanced right now", ["runner"]
)
ADVANCES = Counter(
    "agentlane_runner_advances", "Advances of runs that returned, by outcome", ["runner", "outcome"]
)
SHARD_CLAIMS = Counter("agentlane_runner_shard_claims", "Shard leases claimed", ["runner"])
SHARD_LOSSES = Counter(
    "agentlane_runner_shard_losses",
    "Shards this runner stopped working on, by reason "
    "(handback, drain, stalled, fenced, lease_lost, lease_expired)",
    ["runner", "reason"],
)
FENCED_APPENDS = Counter(
    "agentlane_runner_fenced_appends",
    "Appends the event store rejected because this runner's lease was stale",
    ["runner"],
)
DATABASE_ERRORS = Counter(
    "agentlane_runner_database_errors",
    "Lease, discovery or advance attempts that failed because the database was unreachable",
    ["runner", "stage"],
)
