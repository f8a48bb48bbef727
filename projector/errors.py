"""Errors of the projector.

    AgentlaneError
    └── ProjectorError           the projector cannot go on with what it was doing
        └── PublishFailed        a Pub/Sub publish failed; the batch is rewound and retried

A lost projector lease is the core's :class:`~agentlane.errors.FencedOut`; a checkpoint moved under
a batch (a rebuild swapped the tables) is :class:`~agentlane.errors.CheckpointMoved`.
"""

from __future__ import annotations

from agentlane.errors import AgentlaneError


class ProjectorError(AgentlaneError):
    """The projector cannot go on with what it was doing."""


class PublishFailed(ProjectorError):
    """Retryable: the caller rewinds to its checkpoint and publishes again after a backoff."""

    def __init__(self, message: str, *, ordering_keys: frozenset[str] = frozenset()) -> None:
        super().__init__(message)
        self.ordering_keys = ordering_keys
