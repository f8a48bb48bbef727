"""An HTTP session to Cloud Storage's JSON API with the ambient Google credentials (the anchors'
uploads and the blob store share it)."""

from __future__ import annotations

import requests

SCOPE = "https://www.googleapis.com/auth/devstorage.read_write"


class NoCredentials(Exception):
    """No Google credentials: the message says what google-auth found missing."""


def authorized_session() -> requests.Session:
    """A session that signs each request; :class:`NoCredentials` when there are none."""
    import google.auth
    import google.auth.exceptions
    from google.auth.transport.requests import AuthorizedSession

    try:
        credentials, _ = google.auth.default(scopes=[SCOPE])
    except google.auth.exceptions.GoogleAuthError as exc:
        raise NoCredentials(str(exc)) from None
    session: requests.Session = AuthorizedSession(credentials)  # type: ignore[no-untyped-call]
    return session
