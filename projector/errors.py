"""Errors of the projector.

    AgentlaneError
    └── ProjectorError           the projector cannot go on with what it was doing
        ├── LostLeadership       the leader lease expired or moved: stop at once, wait, re-claim
        ├── CheckpointMoved      a checkpoint changed under a batch (a rebuild swapped the tables)
        └── PublishFailed        a Pub/Sub publish failed; the batch is rewound and retried
"""

from __future__ import annotations

from agentlane.errors import AgentlaneError


class ProjectorError(AgentlaneError):
    """The projector cannot go on with what it was doing."""


class LostLeadership(ProjectorError):
    def __init__(self, holder: str, token: int) -> None:
        super().__init__(f"projector lease token {token} of {holder!r} is stale or expired")
        self.holder = holder
        self.token = token


class CheckpointMoved(ProjectorError):
    def __init__(self, name: str) -> None:
        super().__init__(f"checkpoint {name!r} moved under this batch; reloading")
        self.name = name


class PublishFailed(ProjectorError):
    """Retryable: the caller rewinds to its checkpoint and publishes again after a backoff."""

    def __init__(self, message: str, *, ordering_keys: frozenset[str] = frozenset()) -> None:
        super().__init__(message)
        self.ordering_keys = ordering_keys
