"""The database's connection budget: the most connections a stack's processes can hold at once,
against the `max_connections` it gives Cloud SQL. `parse` refuses a stack that does not fit, so
`pulumi preview` fails before a scale-out meets "too many clients" in production.

Each process holds at most its pool (`AGENTLANE_DB_POOL_MAX`) plus the connections it opens
beside the pool, counted here from the code that opens them. Every replica a stack may run is
counted at its maximum (Cloud Run's `maxInstances`, the gateway HPA's `maxReplicas`).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "COMMAND_SERVICE_EXTRA",
    "GATEWAY_EXTRA",
    "JOBS",
    "PROJECTOR_EXTRA",
    "PROJECTOR_POOL",
    "PROJECTOR_REPLICAS",
    "RESERVED",
    "RUNNER_EXTRA",
    "Budget",
]

#: Runner: its lease pool (2, runners/component.py) and the LISTEN for new work (1).
RUNNER_EXTRA = 3
#: Projector: one LISTEN per follower (read models, publishing); its pool is at least 6.
PROJECTOR_EXTRA = 2
PROJECTOR_POOL = 10
#: One leads, one stands by.
PROJECTOR_REPLICAS = 2
#: Command service: the LISTEN its event streams wake on (command_service/component.py).
COMMAND_SERVICE_EXTRA = 1
#: Gateway: on the Pub/Sub bus it listens to nothing in Postgres; reads use the pool.
GATEWAY_EXTRA = 0
#: Jobs that may run at once: migrate (1), the anchor (2), and the operator's verify (2),
#: shards (1) and rebuild (its pool of 6).
JOBS = 1 + 2 + 2 + 1 + 6
#: Cloud SQL's own sessions, superuser_reserved_connections (3), an operator's psql.
RESERVED = 10


@dataclass(frozen=True)
class Budget:
    """The worst case per part, and the limit it must fit under."""

    parts: dict[str, int]
    max_connections: int

    @property
    def total(self) -> int:
        return sum(self.parts.values())

    def fits(self) -> bool:
        return self.total <= self.max_connections

    def describe(self) -> str:
        parts = ", ".join(f"{name} {count}" for name, count in self.parts.items())
        return (
            f"{self.total} connections at most ({parts}) against max_connections "
            f"{self.max_connections}"
        )


def budget(
    *,
    max_connections: int,
    runners: int,
    runner_pool: int,
    gateways: int,
    gateway_pool: int,
    command_instances: int,
    command_pool: int,
) -> Budget:
    return Budget(
        {
            "runners": runners * (runner_pool + RUNNER_EXTRA),
            "projectors": PROJECTOR_REPLICAS * (PROJECTOR_POOL + PROJECTOR_EXTRA),
            "gateways": gateways * (gateway_pool + GATEWAY_EXTRA),
            "command service": command_instances * (command_pool + COMMAND_SERVICE_EXTRA),
            "jobs": JOBS,
            "reserved": RESERVED,
        },
        max_connections,
    )
