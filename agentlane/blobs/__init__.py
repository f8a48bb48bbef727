"""Blobs by reference: large event values stored once, content-addressed, outside the log.

    stores     where blobs live: a local directory, a Cloud Storage bucket
    refs       which values go to a blob, their references in events, reading them back
    retention  deleting blobs no event references (``agentlane blobs gc``)
    errors     the package's exceptions
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agentlane.blobs.errors import BlobCorrupt, BlobError, BlobMissing, BlobUnavailable
from agentlane.blobs.refs import (
    DEFAULT_THRESHOLD,
    OFFLOADED_FIELDS,
    BlobRef,
    Blobs,
    check,
    encode,
    has_refs,
    refs_in,
)
from agentlane.blobs.stores import (
    BlobStore,
    GcsBlobStore,
    LocalBlobStore,
    StoredBlob,
    open_blob_store,
)

if TYPE_CHECKING:
    from agentlane.settings import Settings

__all__ = [
    "DEFAULT_THRESHOLD",
    "OFFLOADED_FIELDS",
    "BlobCorrupt",
    "BlobError",
    "BlobMissing",
    "BlobRef",
    "BlobStore",
    "BlobUnavailable",
    "Blobs",
    "GcsBlobStore",
    "LocalBlobStore",
    "StoredBlob",
    "blobs_from_settings",
    "check",
    "encode",
    "has_refs",
    "open_blob_store",
    "refs_in",
]


def blobs_from_settings(settings: Settings) -> Blobs | None:
    """The blob store ``AGENTLANE_BLOB_STORE`` names (None: unset, values stay inline)."""
    if settings.blob_store is None:
        return None
    store = open_blob_store(settings.blob_store, emulator=settings.storage_emulator_host)
    return Blobs(store, threshold=settings.blob_threshold)
