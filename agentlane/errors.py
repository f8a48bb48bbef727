"""Errors of the shared core, each carrying the answer it deserves on the wire.

    AgentlaneError                 code              HTTP
    ├── ConfigError                command_failed    500  settings that cannot work
    ├── MigrationError             command_failed    500  a migration failed, or was edited
    ├── StoreError                 command_failed    500  the database refused (see sqlstate)
    │   ├── StoreUnavailable       unavailable       503  retryable: unreachable, pool exhausted
    │   │   └── StoreReadOnly      unavailable       503  retryable: read-only (a failover)
    │   ├── StoreConflict          command_failed    500  a unique constraint refused the write
    │   │   ├── DuplicateEvent                            a batch's idempotency key is stored
    │   │   └── CheckpointMoved                           a checkpoint moved under a batch
    │   ├── SchemaMissing          command_failed    500  a table is missing: not migrated
    │   └── FencedOut              command_failed    500  a fenced write's lease is stale
    ├── InvalidEvent               invalid_command   422  event data that does not match its type
    ├── Refused                    refused           429  a tenant over its share (Retry-After)
    │   ├── RateLimited            rate_limited           over its request rate
    │   └── TooManyActiveRuns      too_many_active_runs   at its cap of unfinished runs
    └── CommandError               invalid_command   422  a command that cannot be carried out
        ├── RunNotFound            run_not_found     404  no such run for this tenant
        ├── RunConflict            run_conflict      409  onConflict=reject, a run in progress
        └── RunFinished            run_finished      409  the run already ended

Every error says once how it travels: ``code`` (the ``code`` of a WebSocket ``error`` frame),
``status`` and ``slug`` (an HTTP problem+json's status and type), ``detail`` (what a client may
read: for a server error never its message, which may carry a driver's) and ``retry_after_s``
(when retrying can help). HTTP problems and WebSocket error frames are both built from these
attributes, so the two doors cannot disagree. The errors inside the machinery (a conflict, a
missing table, a stale fence) are the caller's to handle; one that reaches a client is a fault of
ours, so it answers as one.

Driver errors are translated where they happen, by SQLSTATE (:func:`agentlane.db.translate_errors`);
callers never see psycopg, and never inspect ``__cause__`` to learn what went wrong.
"""

from __future__ import annotations

import math
from typing import ClassVar

__all__ = [
    "AgentlaneError",
    "CheckpointMoved",
    "CommandError",
    "ConfigError",
    "DuplicateEvent",
    "FencedOut",
    "InvalidEvent",
    "MigrationError",
    "RateLimited",
    "Refused",
    "RunConflict",
    "RunFinished",
    "RunNotFound",
    "SchemaMissing",
    "StoreConflict",
    "StoreError",
    "StoreReadOnly",
    "StoreUnavailable",
    "TooManyActiveRuns",
]

#: Seconds a client is told to wait when a dependency is down.
UNAVAILABLE_RETRY_AFTER_S = 2.0


class AgentlaneError(Exception):
    """Root of every error agentlane raises on purpose."""

    #: Wire code: the ``code`` of a WebSocket ``error`` frame.
    code: ClassVar[str] = "command_failed"
    #: HTTP status of the problem+json answer.
    status: ClassVar[int] = 500
    #: Last part of the problem ``type`` URI.
    slug: ClassVar[str] = "internal-error"
    #: When set, retrying after this many seconds may succeed (HTTP ``Retry-After``).
    retry_after_s: float | None = None

    @property
    def detail(self) -> str:
        """What a client may read: the message of a client error, never of a server error."""
        return str(self) if self.status < 500 else "internal error"

    def headers(self) -> dict[str, str]:
        """HTTP headers of the answer (``Retry-After`` when retrying can help)."""
        if self.retry_after_s is None:
            return {}
        return {"Retry-After": str(max(1, math.ceil(self.retry_after_s)))}


class ConfigError(AgentlaneError):
    """Settings that cannot work."""


class MigrationError(AgentlaneError):
    """A migration failed or the applied history does not match ``ddl/``."""


class StoreError(AgentlaneError):
    """The event store (or another table's owner) could not do what was asked."""

    def __init__(self, message: str, *, sqlstate: str | None = None) -> None:
        super().__init__(message)
        #: The server's SQLSTATE, when the server answered (None: no answer, e.g. no connection).
        self.sqlstate = sqlstate


class StoreUnavailable(StoreError):
    """The database cannot serve right now; retrying later may succeed."""

    code, status, slug = "unavailable", 503, "unavailable"
    retry_after_s = UNAVAILABLE_RETRY_AFTER_S

    @property
    def detail(self) -> str:
        return "the event store is unavailable; retry later"


class StoreReadOnly(StoreUnavailable):
    """The server is read-only (a replica, or a primary during a failover): retry later."""


class StoreConflict(StoreError):
    """A unique constraint refused the write: another writer got there first."""


class SchemaMissing(StoreError):
    """A table, column or function is missing: the database is not migrated (or is being
    rebuilt)."""


class FencedOut(StoreError):
    """A fenced write presented a lease that is no longer current; nothing was written."""

    def __init__(self, *, table: str, key: int | str, holder: str, token: int) -> None:
        super().__init__(
            f"{table} {key}: lease token {token} of {holder!r} is stale or expired; "
            "write rejected"
        )
        self.table = table
        self.key = key
        self.holder = holder
        self.token = token


class DuplicateEvent(StoreConflict):
    """A batch carried an idempotency key that is already stored; nothing was written."""

    def __init__(self, *, tenant_id: str, idempotency_key: str) -> None:
        super().__init__(f"idempotency key {idempotency_key!r} is already used", sqlstate="23505")
        self.tenant_id = tenant_id
        self.idempotency_key = idempotency_key


class CheckpointMoved(StoreConflict):
    """A follower's checkpoint changed under its batch (a rebuild swapped the tables): the batch
    rolled back and the follower reloads its position."""

    def __init__(self, name: str) -> None:
        super().__init__(f"checkpoint {name!r} moved under this batch; reloading")
        self.name = name


class InvalidEvent(AgentlaneError):
    """Event data that does not match its type; nothing was written."""

    code, status, slug = "invalid_command", 422, "invalid-command"


class Refused(AgentlaneError):
    """A tenant's command refused to protect the others; nothing was written. Whichever door it
    came through (HTTP 429 + Retry-After, a WebSocket ``error`` frame with ``retryAfter``)."""

    code, status, slug = "refused", 429, "too-many-requests"
    #: The ``reason`` label of the refusal metrics.
    reason: ClassVar[str] = "refused"

    def __init__(self, message: str, *, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class RateLimited(Refused):
    code, reason = "rate_limited", "rate"


class TooManyActiveRuns(Refused):
    code, reason = "too_many_active_runs", "active_runs"

    def __init__(self, tenant_id: str, limit: int, *, retry_after_s: float) -> None:
        super().__init__(
            f"this tenant already has {limit} active runs; wait for some to finish",
            retry_after_s=retry_after_s,
        )
        self.tenant_id = tenant_id
        self.limit = limit


class CommandError(AgentlaneError):
    """A command that cannot be carried out; nothing was written."""

    code, status, slug = "invalid_command", 422, "invalid-command"


class RunNotFound(CommandError):
    code, status, slug = "run_not_found", 404, "not-found"

    def __init__(self, execution_id: str) -> None:
        super().__init__(f"run {execution_id!r} not found")
        self.execution_id = execution_id


class RunConflict(CommandError):
    code, status, slug = "run_conflict", 409, "run-conflict"

    def __init__(self, session_id: str, active_execution_id: str) -> None:
        super().__init__(
            f"session {session_id!r} has a run in progress ({active_execution_id}); "
            "onConflict=reject"
        )
        self.session_id = session_id
        self.active_execution_id = active_execution_id


class EventNotFound(CommandError):
    code, status, slug = "event_not_found", 404, "not-found"

    def __init__(self, session_id: str, event_id: int) -> None:
        super().__init__(f"session {session_id!r} has no event {event_id}")


class SessionExists(CommandError):
    code, status, slug = "session_exists", 409, "session-exists"

    def __init__(self, session_id: str) -> None:
        super().__init__(f"session {session_id!r} already has events: fork into a new one")
        self.session_id = session_id


class RunFinished(CommandError):
    code, status, slug = "run_finished", 409, "run-finished"

    def __init__(self, execution_id: str, status: str) -> None:
        super().__init__(f"run {execution_id!r} already ended ({status})")
        self.execution_id = execution_id
        self.run_status = status
