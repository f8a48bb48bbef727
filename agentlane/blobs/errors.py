"""Errors of the blob store (``agentlane.blobs``).

    AgentlaneError
    └── BlobError             command_failed  500  the blob store failed (unreachable, refused)
        ├── BlobUnavailable   unavailable     503  retryable: the store cannot serve now
        ├── BlobMissing       command_failed  500  an event references a blob the store lacks
        └── BlobCorrupt       command_failed  500  a blob's bytes do not hash to its reference
"""

from __future__ import annotations

from typing import ClassVar

from agentlane.errors import AgentlaneError


class BlobError(AgentlaneError):
    """The blob store failed."""


class BlobUnavailable(BlobError):
    """The blob store cannot serve now (unreachable, throttled, 5xx): retry."""

    code: ClassVar[str] = "unavailable"
    status: ClassVar[int] = 503
    slug: ClassVar[str] = "unavailable"
    retry_after_s: float | None = 2.0


class BlobMissing(BlobError):
    """An event references a blob the store does not hold: it was lost or deleted."""


class BlobCorrupt(BlobError):
    """A blob's bytes do not hash to (or are not the size of) the reference that names them."""
