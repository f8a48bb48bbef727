"""Errors of the shared core.

    AgentlaneError
    ├── ConfigError              settings that cannot work (bad env var, shard-count mismatch)
    ├── MigrationError           a migration failed, or an applied one was edited
    ├── StoreError               the event store could not do what was asked
    │   ├── StoreUnavailable     the database cannot be reached (retryable)
    │   ├── FencedOut            a fenced append presented a stale or expired lease
    │   ├── DuplicateEvent       a batch carried an idempotency key that is already stored
    │   └── EventNotFound        an id that names no event visible to the caller
    ├── InvalidEvent             event data that does not match its type (never written)
    └── CommandError             a command that cannot be carried out (nothing written)
        ├── RunNotFound          no such run for this tenant (another tenant's run included)
        ├── RunConflict          onConflict=reject and the session has a run in progress
        └── RunFinished          the run already ended; it takes no more signals

Driver errors are translated where they happen (``raise … from exc``); callers never see psycopg.
"""

from __future__ import annotations


class AgentlaneError(Exception):
    """Root of every error the shared core raises on purpose."""


class ConfigError(AgentlaneError):
    """Settings that cannot work."""


class MigrationError(AgentlaneError):
    """A migration failed or the applied history does not match ``ddl/``."""


class StoreError(AgentlaneError):
    """The event store could not do what was asked."""


class StoreUnavailable(StoreError):
    """The database cannot be reached right now; retrying later may succeed."""


class FencedOut(StoreError):
    """A fenced append presented a lease that is no longer current; nothing was written."""

    def __init__(self, *, shard_id: int, runner_id: str, lease_token: int) -> None:
        super().__init__(
            f"shard {shard_id}: lease token {lease_token} of runner {runner_id!r} "
            "is stale or expired; append rejected"
        )
        self.shard_id = shard_id
        self.runner_id = runner_id
        self.lease_token = lease_token


class DuplicateEvent(StoreError):
    """A batch carried an idempotency key that is already stored; nothing was written."""

    def __init__(self, *, tenant_id: str, idempotency_key: str) -> None:
        super().__init__(f"idempotency key {idempotency_key!r} is already used")
        self.tenant_id = tenant_id
        self.idempotency_key = idempotency_key


class EventNotFound(StoreError):
    """An event id that names no event visible to the caller."""


class InvalidEvent(AgentlaneError):
    """Event data that does not match its type; nothing was written."""


class CommandError(AgentlaneError):
    """A command that cannot be carried out; nothing was written."""


class RunNotFound(CommandError):
    def __init__(self, execution_id: str) -> None:
        super().__init__(f"run {execution_id!r} not found")
        self.execution_id = execution_id


class RunConflict(CommandError):
    def __init__(self, session_id: str, active_execution_id: str) -> None:
        super().__init__(
            f"session {session_id!r} has a run in progress ({active_execution_id}); "
            "onConflict=reject"
        )
        self.session_id = session_id
        self.active_execution_id = active_execution_id


class RunFinished(CommandError):
    def __init__(self, execution_id: str, status: str) -> None:
        super().__init__(f"run {execution_id!r} already ended ({status})")
        self.execution_id = execution_id
        self.status = status
