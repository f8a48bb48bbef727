"""Writing an anchor to a Cloud Storage bucket (``replay anchor --out gs://BUCKET/PREFIX``).

One media upload through the JSON API with ``ifGenerationMatch=0``: an object is only ever
created, never overwritten, so together with the bucket's locked retention policy (infra) not even
the writer can replace an anchor it wrote. Credentials are the ambient Google ones; with
``STORAGE_EMULATOR_HOST`` set (as Google's own clients read it) the upload goes to that emulator
unauthenticated.
"""

from __future__ import annotations

from urllib.parse import quote

import requests

from agentlane.replay.errors import AnchorError
from agentlane.storage_session import NoCredentials, authorized_session

TIMEOUT_S = 60.0


def split(url: str) -> tuple[str, str]:
    """``gs://bucket/some/prefix`` → ``("bucket", "some/prefix/")``."""
    bucket, _, prefix = url.removeprefix("gs://").partition("/")
    if not bucket:
        raise AnchorError(f"{url}: name a bucket, e.g. gs://my-anchors/prod")
    return bucket, (prefix.rstrip("/") + "/") if prefix else ""


def upload(bucket: str, name: str, content: bytes, *, emulator: str | None = None) -> str:
    """Create object ``name`` in ``bucket``; its ``gs://`` URL. :class:`AnchorError` (one line)
    when it cannot: no credentials, no such bucket, no permission, the object exists."""
    if emulator:
        host = emulator if "://" in emulator else f"http://{emulator}"
        session = requests.Session()
    else:
        host = "https://storage.googleapis.com"
        session = _authorized_session()
    target = (
        f"{host}/upload/storage/v1/b/{quote(bucket, safe='')}/o"
        f"?uploadType=media&ifGenerationMatch=0&name={quote(name, safe='')}"
    )
    try:
        response = session.post(
            target, data=content, headers={"Content-Type": "application/x-ndjson"},
            timeout=TIMEOUT_S,
        )
    except requests.RequestException as exc:
        raise AnchorError(f"cannot reach Cloud Storage: {type(exc).__name__}") from None
    finally:
        session.close()
    if response.status_code == 412:
        raise AnchorError(f"gs://{bucket}/{name} already exists: anchors are never overwritten")
    if not response.ok:
        raise AnchorError(
            f"cannot write gs://{bucket}/{name}: HTTP {response.status_code} {response.reason}"
        )
    return f"gs://{bucket}/{name}"



def _authorized_session() -> requests.Session:
    try:
        return authorized_session()
    except NoCredentials as exc:
        raise AnchorError(f"no Google credentials to write the anchor: {exc}") from None
