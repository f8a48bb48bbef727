"""The drill of runbooks/rotate-jwt-secret.md: the HS256 secret of a running command service is
rotated under load and no request is refused. A real `agentlane command-service` reads
AGENTLANE_JWT_SECRET_FILE (replaced the way the kubelet updates a mounted Secret); clients keep
calling while the file goes old → old+new, the issuer moves to the new secret, then the file
goes new only. Every request in flight gets its answer; afterwards the old secret's tokens are
refused and nothing restarted."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import httpx
import jwt
import pytest

from tests.conftest import TEST_SHARDS, as_app
from tests.fixtures.processes import spawn, stop_all

OLD = "old-secret-of-the-drill-0123456789abcdef"
NEW = "new-secret-of-the-drill-fedcba9876543210"


def write_secrets(path: Path, *secrets: str) -> None:
    """As the kubelet updates a mounted Secret: the new file replaces the old one at once."""
    staged = path.with_suffix(".new")
    staged.write_text("".join(f"{s}\n" for s in secrets))
    os.replace(staged, path)


def token(secret: str, tenant: str = "acme") -> str:
    return jwt.encode({"tenant": tenant, "exp": int(time.time()) + 600}, secret, "HS256")


@pytest.mark.slow
def test_rotating_the_jwt_secret_under_load_refuses_no_request(
    database_url: str, tmp_path: Path
) -> None:
    secrets = tmp_path / "jwt-secret"
    write_secrets(secrets, OLD)
    env = {
        "DATABASE_URL": as_app(database_url), "AGENTLANE_SHARDS": str(TEST_SHARDS),
        "AGENTLANE_AUTH": "jwt", "AGENTLANE_JWT_SECRET_FILE": str(secrets),
        # The load is three clients flat out: the tenant's rate limit is not what is drilled.
        "AGENTLANE_CMD_RATE": "0",
    }
    proc = spawn("command-service", ["command-service", "--host", "127.0.0.1"], env=env,
                 log_dir=tmp_path)
    try:
        proc.wait_http("/readyz")
        pid = proc.pid
        issuer = {"secret": OLD}  # what the token issuer signs with right now
        answers: list[int] = []
        stop = threading.Event()

        def load() -> None:
            with httpx.Client(base_url=proc.base_url, timeout=10) as http:
                while not stop.is_set():
                    headers = {"authorization": f"Bearer {token(issuer['secret'])}"}
                    answers.append(http.get("/sessions/s/events", headers=headers).status_code)

        clients = [threading.Thread(target=load) for _ in range(3)]
        for client in clients:
            client.start()
        time.sleep(1.0)
        write_secrets(secrets, OLD, NEW)  # 1. both valid
        time.sleep(1.0)
        issuer["secret"] = NEW  # 2. the issuer signs with the new one
        time.sleep(1.0)
        write_secrets(secrets, NEW)  # 3. the old one goes
        time.sleep(1.0)
        stop.set()
        for client in clients:
            client.join(10)

        assert len(answers) > 50, len(answers)
        assert set(answers) == {200}, sorted(set(answers))
        with httpx.Client(base_url=proc.base_url, timeout=10) as http:
            old = http.get("/sessions/s/events", headers={"authorization": f"Bearer {token(OLD)}"})
            new = http.get("/sessions/s/events", headers={"authorization": f"Bearer {token(NEW)}"})
        assert (old.status_code, new.status_code) == (401, 200)
        assert proc.alive() and proc.pid == pid
    finally:
        stop_all([proc])
