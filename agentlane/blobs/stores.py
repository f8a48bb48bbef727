"""Where blobs live: a local directory (development) or a Cloud Storage bucket (production).

Both are content-addressed: a blob's name is the hex SHA-256 of its bytes, so writing one twice
stores it once, and whoever reads it checks the bytes against the name
(:mod:`agentlane.blobs.refs`).

A write is durable when :meth:`BlobStore.put` returns (the file and its directory are fsynced;
Cloud Storage acknowledges after its own replication), which is what lets an event that names the
blob commit after it. Writing a blob that exists already *touches* it (the file's mtime; the
object's ``customTime``), so the collector's grace period runs from the newest write that may
be about to commit a reference to it (:mod:`agentlane.blobs.retention`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import requests

from agentlane.blobs.errors import BlobError, BlobMissing, BlobUnavailable
from agentlane.storage_session import NoCredentials, authorized_session

TIMEOUT_S = 60.0
_PAGE = 1000


@dataclass(frozen=True, slots=True)
class StoredBlob:
    """One blob as the store lists it: its name, and when it was last written (or touched).
    ``version`` is what a delete must still find for it to go ahead (:meth:`BlobStore.delete`)."""

    sha256: str
    written_at: datetime
    version: str


class BlobStore(Protocol):
    """A content-addressed blob store."""

    #: Where it is, as ``AGENTLANE_BLOB_STORE`` names it (for logs and error lines).
    url: str

    async def put(self, sha256: str, content: bytes) -> None:
        """Store ``content`` under ``sha256`` durably (touch it when it exists)."""
        ...

    async def get(self, sha256: str) -> bytes:
        """The bytes stored under ``sha256``; :class:`BlobMissing` when there are none."""
        ...

    def list(self) -> AsyncIterator[StoredBlob]:
        """Every blob, in no particular order."""
        ...

    async def delete(self, blob: StoredBlob) -> bool:
        """Delete ``blob`` unless it was written or touched since it was listed as ``blob``:
        True when it was deleted."""
        ...


def open_blob_store(url: str, *, emulator: str | None = None) -> BlobStore:
    """The store ``url`` names: ``gs://BUCKET[/PREFIX]``, ``file:///DIR`` or a directory path.
    ``emulator``: a Cloud Storage emulator's address (``STORAGE_EMULATOR_HOST``)."""
    if url.startswith("gs://"):
        bucket, _, prefix = url.removeprefix("gs://").partition("/")
        if not bucket:
            raise BlobError(f"{url}: name a bucket, e.g. gs://my-blobs")
        return GcsBlobStore(bucket, prefix.strip("/"), emulator=emulator)
    if "://" in url and not url.startswith("file://"):
        raise BlobError(f"{url}: a blob store is gs://BUCKET[/PREFIX], file:///DIR or a directory")
    return LocalBlobStore(Path(url.removeprefix("file://")))


class LocalBlobStore:
    """Blobs as files ``DIR/ab/abcdef…`` (the first two hex digits fan the directory out)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = str(root)

    def _path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    async def put(self, sha256: str, content: bytes) -> None:
        await asyncio.to_thread(self._put, sha256, content)

    def _put(self, sha256: str, content: bytes) -> None:
        path = self._path(sha256)
        if path.exists():
            os.utime(path)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written aside, fsynced, then renamed into place: a reader sees all of it or nothing.
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".put-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(content)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        _fsync_dir(path.parent)

    async def get(self, sha256: str) -> bytes:
        try:
            return await asyncio.to_thread(self._path(sha256).read_bytes)
        except FileNotFoundError:
            raise BlobMissing(f"blob {sha256} is not in {self.url}") from None

    async def list(self) -> AsyncIterator[StoredBlob]:
        for blob in await asyncio.to_thread(lambda: list(self._scan())):
            yield blob

    def _scan(self) -> Iterator[StoredBlob]:
        if not self.root.is_dir():
            return
        for fan in sorted(self.root.iterdir()):
            if not fan.is_dir() or len(fan.name) != 2:
                continue
            for path in fan.iterdir():
                if path.name.startswith("."):
                    continue
                mtime = path.stat().st_mtime_ns
                yield StoredBlob(
                    path.name, datetime.fromtimestamp(mtime / 1e9, UTC), str(mtime)
                )

    async def delete(self, blob: StoredBlob) -> bool:
        return await asyncio.to_thread(self._delete, blob)

    def _delete(self, blob: StoredBlob) -> bool:
        path = self._path(blob.sha256)
        try:
            if str(path.stat().st_mtime_ns) != blob.version:
                return False  # touched since it was listed: a writer may be about to use it
            path.unlink()
        except FileNotFoundError:
            return False
        return True


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class GcsBlobStore:
    """Blobs as objects ``PREFIX/abcdef…`` of a Cloud Storage bucket, through its JSON API.

    Objects are only ever created (``ifGenerationMatch=0``); an existing one is touched by moving
    its ``customTime`` forward, which also bumps its metageneration, so a collector's delete
    (``ifMetagenerationMatch`` of what it listed) fails once a writer has touched it. Credentials
    are the ambient Google ones; with an emulator they are not used.
    """

    def __init__(self, bucket: str, prefix: str = "", *, emulator: str | None = None) -> None:
        self.bucket = bucket
        self.prefix = f"{prefix}/" if prefix else ""
        self.url = f"gs://{bucket}/{prefix}".rstrip("/")
        if emulator:
            self._host = emulator if "://" in emulator else f"http://{emulator}"
            self._session = requests.Session()
        else:
            self._host = "https://storage.googleapis.com"
            self._session = _authorized_session()
        self._bucket_url = f"{self._host}/storage/v1/b/{quote(bucket, safe='')}"

    def _object_url(self, sha256: str) -> str:
        return f"{self._bucket_url}/o/{quote(self.prefix + sha256, safe='')}"

    def _call(self, method: str, url: str, **kwargs: object) -> requests.Response:
        try:
            response = self._session.request(method, url, timeout=TIMEOUT_S, **kwargs)  # type: ignore[arg-type]
        except requests.RequestException as exc:
            raise BlobUnavailable(f"cannot reach {self.url}: {type(exc).__name__}") from None
        if response.status_code == 429 or response.status_code >= 500:
            raise BlobUnavailable(f"{self.url}: HTTP {response.status_code}")
        return response

    async def put(self, sha256: str, content: bytes) -> None:
        await asyncio.to_thread(self._put, sha256, content)

    def _put(self, sha256: str, content: bytes) -> None:
        name = quote(self.prefix + sha256, safe="")
        response = self._call(
            "POST",
            f"{self._host}/upload/storage/v1/b/{quote(self.bucket, safe='')}/o"
            f"?uploadType=media&ifGenerationMatch=0&name={name}",
            data=content, headers={"Content-Type": "application/octet-stream"},
        )
        if response.status_code == 412:  # it exists: touch it (customTime only moves forward)
            now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
            response = self._call("PATCH", self._object_url(sha256), json={"customTime": now})
        if not response.ok:
            raise BlobError(
                f"cannot write {self.url}/{sha256}: HTTP {response.status_code} {response.reason}"
            )

    async def get(self, sha256: str) -> bytes:
        return await asyncio.to_thread(self._get, sha256)

    def _get(self, sha256: str) -> bytes:
        response = self._call("GET", self._object_url(sha256) + "?alt=media")
        if response.status_code == 404:
            raise BlobMissing(f"blob {sha256} is not in {self.url}")
        if not response.ok:
            raise BlobError(
                f"cannot read {self.url}/{sha256}: HTTP {response.status_code} {response.reason}"
            )
        return response.content

    async def list(self) -> AsyncIterator[StoredBlob]:
        token: str | None = None
        while True:
            page = await asyncio.to_thread(self._list_page, token)
            for item in page.get("items", []):
                name = str(item["name"]).removeprefix(self.prefix)
                if "/" in name:
                    continue  # not ours: a deeper prefix
                stamps = [item.get("timeCreated"), item.get("customTime"), item.get("updated")]
                written = max(_parse_time(stamp) for stamp in stamps if stamp)
                yield StoredBlob(name, written, str(item.get("metageneration", "1")))
            token = page.get("nextPageToken")
            if not token:
                return

    def _list_page(self, token: str | None) -> dict[str, Any]:
        params: dict[str, str | int] = {"prefix": self.prefix, "maxResults": _PAGE}
        if token:
            params["pageToken"] = token
        response = self._call("GET", f"{self._bucket_url}/o", params=params)
        if not response.ok:
            raise BlobError(f"cannot list {self.url}: HTTP {response.status_code}")
        return response.json()  # type: ignore[no-any-return]

    async def delete(self, blob: StoredBlob) -> bool:
        response = await asyncio.to_thread(
            self._call, "DELETE",
            self._object_url(blob.sha256) + f"?ifMetagenerationMatch={blob.version}",
        )
        if response.status_code in (404, 412):
            return False
        if not response.ok:
            raise BlobError(f"cannot delete {self.url}/{blob.sha256}: HTTP {response.status_code}")
        return True


def _parse_time(stamp: object) -> datetime:
    return datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))



def _authorized_session() -> requests.Session:
    try:
        return authorized_session()
    except NoCredentials as exc:
        raise BlobError(f"no Google credentials for the blob store: {exc}") from None
