"""The suite says which PostgreSQL it ran on, and runs on the one it was asked for: a second-major
run (``TEST_POSTGRES_BIN``) that silently fell back to the embedded server would prove nothing."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import psycopg

#: The oldest major agentlane supports (docs/contract.md, "Names"); CI runs it beside the newest.
OLDEST_MAJOR = 15


def test_the_server_is_a_supported_major_and_the_one_asked_for(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SHOW server_version_num").fetchone()
    assert row is not None
    major = int(row[0]) // 10000
    assert major >= OLDEST_MAJOR
    binaries = os.environ.get("TEST_POSTGRES_BIN")
    if binaries:
        version = subprocess.run(
            [str(Path(binaries) / "postgres"), "--version"], capture_output=True, text=True,
            check=True,
        ).stdout
        match = re.search(r"(\d+)\.\d+", version)
        assert match is not None and major == int(match.group(1)), version
