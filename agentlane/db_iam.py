"""Cloud SQL IAM database authentication: no database password exists anywhere.

A workload logs in as its service account's IAM database user, and its "password" is an OAuth
access token for that account (scope ``sqlservice.login``), checked by Cloud SQL at login only
and valid for about an hour. Every connection this process opens (the pools, the LISTEN
connections, the audit's snapshots, spawned verify workers) goes through libpq, which reads a
password file at each connection attempt; so one :class:`PasswordFile` keeps a private password
file holding the current token, refreshed well before it expires, and ``PGPASSFILE`` names it.
No connection code knows about tokens, and a token that changes needs no reconnect or restart.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from agentlane.backoff import Backoff
from agentlane.errors import ConfigError
from agentlane.files import write_atomically

logger = logging.getLogger(__name__)

#: The OAuth scope Cloud SQL accepts for an IAM database login.
SCOPE = "https://www.googleapis.com/auth/sqlservice.login"
#: Refresh this long before the token expires (Cloud SQL checks it only at login).
REFRESH_BEFORE_S = 600.0
#: When the token's expiry is unknown, refresh this often.
DEFAULT_REFRESH_S = 1800.0

#: A token and its expiry (``None``: unknown).
Token = tuple[str, datetime | None]


def google_token() -> Token:
    """An access token of the ambient Google credentials (Workload Identity on GKE, the service
    account on Cloud Run, application-default credentials on a laptop)."""
    import google.auth
    import google.auth.exceptions
    import google.auth.transport.requests

    try:
        credentials, _ = google.auth.default(scopes=[SCOPE])
        credentials.refresh(google.auth.transport.requests.Request())  # type: ignore[no-untyped-call]
    except google.auth.exceptions.GoogleAuthError as exc:
        raise ConfigError(f"no Google credentials for IAM database login: {exc}") from None
    expiry = credentials.expiry
    if expiry is not None and expiry.tzinfo is None:  # google-auth keeps naive UTC
        expiry = expiry.replace(tzinfo=UTC)
    return str(credentials.token), expiry


def _escape(field: str) -> str:
    return field.replace("\\", "\\\\").replace(":", "\\:")


class PasswordFile:
    """A libpq password file (mode 0600) that always holds a current token for ``user``."""

    def __init__(self, user: str, source: Callable[[], Token] = google_token) -> None:
        self._user = user
        self._source = source
        directory = Path(tempfile.mkdtemp(prefix="agentlane-pgpass-"))
        self.path = directory / "pgpass"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self) -> float:
        """Fetch a token and write it; the seconds until the next refresh is due."""
        token, expiry = self._source()
        line = f"*:*:*:{_escape(self._user)}:{_escape(token)}\n"
        write_atomically(self.path, line.encode())
        if expiry is None:
            return DEFAULT_REFRESH_S
        left = (expiry - datetime.now(UTC)).total_seconds()
        return max(1.0, left - REFRESH_BEFORE_S)

    def start(self) -> None:
        """Write the first token (a failure is a :class:`ConfigError`: nothing could connect),
        point libpq at the file and keep it fresh from a daemon thread."""
        wait = self.refresh()
        os.environ["PGPASSFILE"] = str(self.path)
        self._thread = threading.Thread(
            target=self._keep_fresh, args=(wait,), name="db-iam-token", daemon=True
        )
        self._thread.start()

    def _keep_fresh(self, wait: float) -> None:
        backoff = Backoff(initial_s=1.0, maximum_s=60.0)
        while not self._stop.wait(wait):
            try:
                wait = self.refresh()
                backoff.reset()
            except Exception as exc:  # the old token is still good for a while: keep trying
                wait = backoff.next_delay()
                logger.warning(
                    "could not refresh the IAM database token; retrying",
                    extra={"error": type(exc).__name__, "retry_s": round(wait, 1)},
                )

    def stop(self) -> None:
        """Stop refreshing and remove the file (and its directory)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if os.environ.get("PGPASSFILE") == str(self.path):
            del os.environ["PGPASSFILE"]
        shutil.rmtree(self.path.parent, ignore_errors=True)


def login_user(database_url: str) -> str:
    """The user a URL logs in as (an IAM login must name it: the token says who, not the URL)."""
    import psycopg.conninfo

    params = psycopg.conninfo.conninfo_to_dict(database_url)
    user = params.get("user")
    if not user:
        raise ConfigError(
            "AGENTLANE_DB_IAM_AUTH needs the IAM database user in DATABASE_URL "
            "(e.g. postgresql://runner%40my-project.iam@10.0.0.5/agentlane)"
        )
    if params.get("password"):
        raise ConfigError("AGENTLANE_DB_IAM_AUTH: DATABASE_URL must not carry a password")
    return str(user)


@contextlib.contextmanager
def iam_login(
    database_url: str | None, source: Callable[[], Token] = google_token
) -> Iterator[PasswordFile]:
    """A :class:`PasswordFile` for ``database_url``'s user, kept fresh while the block runs."""
    if database_url is None:
        raise ConfigError("AGENTLANE_DB_IAM_AUTH needs DATABASE_URL (or --database-url)")
    password = PasswordFile(login_user(database_url), source)
    try:
        password.start()
        yield password
    finally:
        password.stop()
