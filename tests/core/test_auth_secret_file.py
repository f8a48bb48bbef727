"""AGENTLANE_JWT_SECRET_FILE: HS256 secrets from a mounted file, one per line, read again when it
changes; any of them verifies a token; a bad update keeps the last good secrets."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import jwt
import pytest

from agentlane.auth import Authenticator, Unauthorized
from agentlane.errors import ConfigError

OLD = "o" * 32
NEW = "n" * 40
OTHER = "x" * 32


def token(secret: str) -> str:
    return jwt.encode({"tenant": "acme", "exp": int(time.time()) + 60}, secret, "HS256")


def write(path: Path, *lines: str) -> None:
    staged = path.with_suffix(".new")
    staged.write_text("".join(f"{line}\n" for line in lines))
    os.replace(staged, path)


async def test_every_listed_secret_verifies_and_a_rotation_needs_no_restart(
    tmp_path: Path,
) -> None:
    path = tmp_path / "secrets"
    write(path, OLD)
    auth = Authenticator(mode="jwt", secret_file=path)
    assert await auth.tenant_for(token(OLD)) == "acme"
    write(path, OLD, NEW)
    assert await auth.tenant_for(token(OLD)) == await auth.tenant_for(token(NEW)) == "acme"
    write(path, NEW)
    with pytest.raises(Unauthorized, match="signature does not verify"):
        await auth.tenant_for(token(OLD))
    with pytest.raises(Unauthorized, match="signature does not verify"):
        await auth.tenant_for(token(OTHER))
    assert await auth.tenant_for(token(NEW)) == "acme"


@pytest.mark.parametrize("update", ["short", "empty", "gone"])
async def test_a_bad_update_keeps_the_last_good_secrets(
    tmp_path: Path, update: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "secrets"
    write(path, OLD, NEW)
    auth = Authenticator(mode="jwt", secret_file=path)
    if update == "short":
        write(path, "too-short")
    elif update == "empty":
        write(path, "")
    else:
        path.unlink()
    with caplog.at_level(logging.ERROR):
        assert await auth.tenant_for(token(NEW)) == "acme"
    assert "keeping the last good JWT secrets" in caplog.text
    assert "too-short" not in caplog.text  # a secret never reaches the logs


@pytest.mark.parametrize(
    ("lines", "missing", "says"),
    [((OLD, "short"), False, "at least 32 bytes"), ((), False, "empty"), ((), True, "secrets")],
)
def test_a_bad_file_at_start_is_refused(
    tmp_path: Path, lines: tuple[str, ...], missing: bool, says: str
) -> None:
    path = tmp_path / "secrets"
    if not missing:
        write(path, *lines)
    with pytest.raises(ConfigError, match=says):
        Authenticator(mode="jwt", secret_file=path)


async def test_the_variable_and_the_file_both_verify(tmp_path: Path) -> None:
    path = tmp_path / "secrets"
    write(path, NEW)
    auth = Authenticator(mode="jwt", secret=OLD, secret_file=path)
    assert await auth.tenant_for(token(OLD)) == await auth.tenant_for(token(NEW)) == "acme"
