"""IAM database login (``AGENTLANE_DB_IAM_AUTH``) against a real Postgres that demands a password
of the login: the password is a token from Google's credentials (here google-auth's real code
against a local metadata server, as on GKE and Cloud Run), no password is configured anywhere,
and when the token changes new connections use the new one without a restart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from agentlane.db import open_database
from agentlane.db_iam import PasswordFile, Token, iam_login
from agentlane.errors import ConfigError
from tests.conftest import TEST_SHARDS, PgServer


@pytest.fixture
def iam_user(pg_server: PgServer, database_url: str) -> Iterator[str]:
    """A login (granted the app role) that the server makes prove a password over TCP."""
    if pg_server.embedded is None:
        pytest.skip("needs the embedded server (its pg_hba.conf)")
    role = f"iam_probe_{uuid.uuid4().hex[:8]}"
    hba = pg_server.embedded.data_dir / "pg_hba.conf"
    original = hba.read_text()
    hba.write_text(f"host all {role} 127.0.0.1/32 scram-sha-256\n{original}")
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'token-1' IN ROLE agentlane_app").format(
                sql.Identifier(role)
            )
        )
        conn.execute("SELECT pg_reload_conf()")
    try:
        yield role
    finally:
        hba.write_text(original)
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("SELECT pg_reload_conf()")
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def as_user(database_url: str, user: str) -> str:
    return str(psycopg.conninfo.make_conninfo(database_url, user=user, host="127.0.0.1"))


class MetadataServer(ThreadingHTTPServer):
    """The GCE/GKE metadata server's token endpoints, as google-auth calls them."""

    token = "token-1"


class _Metadata(BaseHTTPRequestHandler):
    server: MetadataServer

    def do_GET(self) -> None:
        if "/token" in self.path:
            body = {"access_token": self.server.token, "expires_in": 3599, "token_type": "Bearer"}
        elif "service-accounts/default" in self.path:
            body = {"email": "runner@p.iam.gserviceaccount.com", "aliases": ["default"],
                    "scopes": ["https://www.googleapis.com/auth/sqlservice.login"]}
        else:
            body = {}
        payload = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Metadata-Flavor", "Google")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def metadata_server() -> Iterator[MetadataServer]:
    server = MetadataServer(("127.0.0.1", 0), _Metadata)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _agentlane(
    args: list[str], database_url: str, tmp_path: Path, metadata: MetadataServer, **env: str
) -> subprocess.CompletedProcess[str]:
    host = f"127.0.0.1:{metadata.server_address[1]}"
    return subprocess.run(
        [sys.executable, "-m", "agentlane.cli", *args],
        env={
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(tmp_path),
            "CLOUDSDK_CONFIG": str(tmp_path / "gcloud"),  # no application-default credentials
            "GCE_METADATA_HOST": host,
            "GCE_METADATA_IP": host,
            "DATABASE_URL": database_url,
            "AGENTLANE_SHARDS": str(TEST_SHARDS),
            **env,
        },
        capture_output=True, text=True, timeout=60, check=False,
    )


def test_a_process_logs_in_with_its_google_token_and_no_password(
    database_url: str, iam_user: str, metadata_server: MetadataServer, tmp_path: Path
) -> None:
    url = as_user(database_url, iam_user)
    without = _agentlane(["replay", "verify"], url, tmp_path, metadata_server)
    assert without.returncode == 1 and "password" in without.stderr, without.stderr

    logged_in = _agentlane(
        ["replay", "verify"], url, tmp_path, metadata_server, AGENTLANE_DB_IAM_AUTH="true"
    )
    assert logged_in.returncode == 0, logged_in.stderr
    assert logged_in.stdout.startswith("OK: 0 events")

    metadata_server.token = "not-the-password"
    refused = _agentlane(
        ["replay", "verify"], url, tmp_path, metadata_server, AGENTLANE_DB_IAM_AUTH="true"
    )
    assert refused.returncode == 1 and "password authentication failed" in refused.stderr
    assert "not-the-password" not in refused.stderr


def test_a_url_with_a_password_or_no_user_is_refused() -> None:
    with pytest.raises(ConfigError, match="must not carry a password"):
        with iam_login("postgresql://u:secret@127.0.0.1/db", lambda: ("t", None)):
            pass
    with pytest.raises(ConfigError, match="needs the IAM database user"):
        with iam_login("host=127.0.0.1 dbname=db", lambda: ("t", None)):
            pass


async def test_a_new_token_is_used_by_new_connections_without_a_restart(
    database_url: str, iam_user: str
) -> None:
    current: list[Token] = [("token-1", datetime.now(UTC) + timedelta(hours=1))]
    password = PasswordFile(iam_user, lambda: current[0])
    password.start()
    try:
        assert oct(password.path.stat().st_mode & 0o777) == "0o600"
        url = as_user(database_url, iam_user)
        async with open_database(url, name="iam", min_size=1, max_size=4) as db:
            async with db.connection() as conn:
                row = await (await conn.execute("SELECT current_user")).fetchone()
            assert row == (iam_user,)
            with psycopg.connect(database_url, autocommit=True) as admin:
                admin.execute(
                    sql.SQL("ALTER ROLE {} PASSWORD 'token-2'").format(sql.Identifier(iam_user))
                )
            current[0] = ("token-2", None)
            assert password.refresh() > 0
            # Connections the pool opens from now on log in with the new token.
            async with db.connection() as a, db.connection() as b, db.connection() as c:
                for conn in (a, b, c):
                    await conn.execute("SELECT 1")
    finally:
        password.stop()
    assert not password.path.exists()
