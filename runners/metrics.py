"""Prometheus metrics of a runner: progress, not just liveness.

Collectors live on the registry the runner is given (the one its process serves at ``/metrics``),
one runner per registry. The shard-level progress gauge is labelled by shard: a shard has one owner
at a time, and an owner removes its series when it lets the shard go.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class RunnerMetrics:
    """A runner's collectors, created on ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.oldest_due_work_age = Gauge(
            "agentlane_oldest_due_work_age_seconds",
            "Age of the oldest due work on an owned shard that no advance is handling yet "
            "(a run waiting to start or resume, a due timer); 0 when none is waiting",
            ["shard"],
            registry=registry,
        )
        self.lease_renewal_lag = Gauge(
            "agentlane_lease_renewal_lag_seconds",
            "Seconds since this runner last renewed all of its leases (healthy: about TTL/3 "
            "or less)",
            registry=registry,
        )
        self.owned_shards = Gauge(
            "agentlane_runner_owned_shards", "Shards this runner holds", registry=registry
        )
        self.target_shards = Gauge(
            "agentlane_runner_target_shards",
            "This runner's fair share: ceil(shards / live runners)",
            registry=registry,
        )
        self.runs_in_flight = Gauge(
            "agentlane_runner_runs_in_flight", "Runs being advanced right now", registry=registry
        )
        self.runs_unrunnable = Gauge(
            "agentlane_runs_unrunnable",
            "Due runs of this runner's shards it cannot run, left untouched: reason missing (no "
            "code for their workflow version here) or diverged (the code under that version no "
            "longer replays their journal); they wait for a runner that can, a rollback, or an "
            "operator moving them to another version",
            ["workflow", "version", "reason"],
            registry=registry,
        )
        self.advances = Counter(
            "agentlane_runner_advances", "Advances of runs that returned, by outcome",
            ["outcome"], registry=registry,
        )
        self.runs_expired = Counter(
            "agentlane_runner_runs_expired",
            "Runs this runner cancelled for passing their wall-time deadline.",
            registry=registry,
        )
        self.shard_claims = Counter(
            "agentlane_runner_shard_claims", "Shard leases claimed", registry=registry
        )
        self.shard_losses = Counter(
            "agentlane_runner_shard_losses",
            "Shards this runner stopped working on, by reason "
            "(handback, drain, stalled, fenced, lease_lost, lease_expired)",
            ["reason"],
            registry=registry,
        )
        self.fenced_appends = Counter(
            "agentlane_runner_fenced_appends",
            "Appends the event store rejected because this runner's lease was stale",
            registry=registry,
        )
        self.database_errors = Counter(
            "agentlane_runner_database_errors",
            "Lease, discovery or advance attempts that failed because the database was "
            "unreachable",
            ["stage"],
            registry=registry,
        )

    def forget_shard(self, shard: int) -> None:
        """The shard's owner let it go: its progress series is the next owner's to report."""
        try:
            self.oldest_due_work_age.remove(str(shard))
        except KeyError:
            pass
