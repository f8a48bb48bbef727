"""The restore drill (runbooks/restore.md): point-in-time recovery on a real PostgreSQL.

A cluster archiving its WAL takes a base backup, keeps writing runs, has an anchor sealed, then
suffers a bad write (the event table dropped). The drill restores the base backup and replays the
archive to the moment before the bad write, then proves what an operator must prove before
sending traffic back: every event written before that moment is there and nothing after it,
`agentlane replay verify` (with the anchor) passes, and `agentlane replay rebuild` recreates the
derived tables from the restored events. It prints how long each step took.

It runs on Debian's PostgreSQL 15 server binaries (what the machine has besides the embedded
wheel; ``TEST_POSTGRES_BIN`` overrides; scripts/system-deps.sh installs them).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from agentlane.cli.embedded_pg import EmbeddedPostgres, local_url
from agentlane.db import open_database
from agentlane.migrate import migrate
from agentlane.store import EventStore
from tests.conftest import TEST_SHARDS
from tests.projector.workload import run_events

PG15 = Path(os.environ.get("TEST_POSTGRES_BIN") or "/usr/lib/postgresql/15/bin")
ANCHOR_KEY = "restore-drill-hmac-secret-of-at-least-32-bytes"

# CI and runbooks/drill.sh set AGENTLANE_REQUIRE_POSTGRES15=1: there a missing server fails.
pytestmark = pytest.mark.skipif(
    not (PG15 / "pg_basebackup").exists()
    and os.environ.get("AGENTLANE_REQUIRE_POSTGRES15") != "1",
    reason=f"needs PostgreSQL server binaries with pg_basebackup in {PG15}",
)


async def write_runs(url: str, tag: str, runs: int) -> None:
    async with open_database(url, name="drill", max_size=2) as db:
        store = EventStore(db, shards=TEST_SHARDS)
        for i in range(runs):
            for chunk in run_events("acme", f"{tag}-{i % 3}", f"{tag}{i}", tokens=i % 4):
                await store.append_batch(chunk)


def configure(data_dir: Path, settings: dict[str, str]) -> None:
    """Settings in the cluster's own file (values with spaces cannot go on pg_ctl's line)."""
    with (data_dir / "postgresql.auto.conf").open("a") as conf:
        for key, value in settings.items():
            conf.write(f"{key} = '{value}'\n")


def count_events(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM agent_events").fetchone()
    assert row is not None
    return int(row[0])


def agentlane(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ, "DATABASE_URL": url, "AGENTLANE_SHARDS": str(TEST_SHARDS),
        "AGENTLANE_ANCHOR_KEY": ANCHOR_KEY,
    }
    return subprocess.run(
        [sys.executable, "-m", "agentlane", *args], env=env, capture_output=True, text=True,
        timeout=300,
    )


def test_point_in_time_recovery_undoes_a_bad_write_and_the_restored_history_verifies(
    tmp_path: Path,
) -> None:
    archive = tmp_path / "wal-archive"
    archive.mkdir()
    primary = EmbeddedPostgres(tmp_path / "primary", bin_dir=PG15)
    primary.init()
    configure(primary.data_dir, {
        "wal_level": "replica",
        "archive_mode": "on",
        "archive_command": f"test ! -f {archive}/%f && cp %p {archive}/%f",
        "archive_timeout": "1s",
    })
    if os.geteuid() == 0:  # the server's own user writes the archive
        import pwd

        entry = pwd.getpwnam("agentlane-pg")
        os.chown(archive, entry.pw_uid, entry.pw_gid)
    took: dict[str, float] = {}
    restored: EmbeddedPostgres | None = None
    try:
        primary.start()
        url = primary.url()
        migrate(url, shards=TEST_SHARDS)
        asyncio.run(write_runs(url, "before-backup", 6))

        started = time.monotonic()
        backup = tmp_path / "base-backup"
        subprocess.run(
            [str(PG15 / "pg_basebackup"), "-d", url, "-D", str(backup), "-X", "stream",
             "--checkpoint=fast"],
            check=True, capture_output=True,
        )
        took["base backup"] = time.monotonic() - started

        asyncio.run(write_runs(url, "after-backup", 9))  # only the archived WAL holds these
        anchor = tmp_path / "anchor.ndjson"
        sealed = agentlane(url, "replay", "anchor", "--out", str(anchor))
        assert sealed.returncode == 0, sealed.stderr
        good = count_events(url)
        with psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute("SELECT now()").fetchone()
            assert row is not None
            target = row[0]
            time.sleep(0.5)  # the bad write commits strictly after the target
            conn.execute("DROP TABLE agent_events CASCADE")  # the bad write
            conn.execute("SELECT pg_switch_wal()")
        # Every segment up to the bad write is archived before the primary is abandoned.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with psycopg.connect(url, autocommit=True) as conn:
                stats = conn.execute(
                    "SELECT archived_count, failed_count, last_archived_wal, "
                    "pg_walfile_name(pg_current_wal_lsn()) FROM pg_stat_archiver"
                ).fetchone()
            assert stats is not None and stats[1] == 0, stats
            if stats[2] is not None and stats[2] >= stats[3]:
                break
            time.sleep(0.2)
        primary.stop(mode="immediate")

        started = time.monotonic()
        (backup / "recovery.signal").touch()
        configure(backup, {
            "restore_command": f"cp {archive}/%f %p",
            "recovery_target_time": target.isoformat(),
            "recovery_target_action": "promote",
            "archive_mode": "off",
        })
        restored = EmbeddedPostgres(backup, bin_dir=PG15)
        restored.start()
        restored_url = local_url(restored.port)
        deadline = time.monotonic() + 120
        while True:
            with psycopg.connect(restored_url, autocommit=True) as conn:
                row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
            if row is not None and row[0] is False:
                break
            assert time.monotonic() < deadline, "recovery never finished"
            time.sleep(0.2)
        took["restore to the target time"] = time.monotonic() - started

        assert count_events(restored_url) == good, "every event before the target, none after"
        started = time.monotonic()
        verified = agentlane(restored_url, "replay", "verify", "--anchor", str(anchor))
        took["replay verify --anchor"] = time.monotonic() - started
        assert verified.returncode == 0, verified.stdout + verified.stderr
        started = time.monotonic()
        rebuilt = agentlane(restored_url, "replay", "rebuild")
        took["replay rebuild"] = time.monotonic() - started
        assert rebuilt.returncode == 0, rebuilt.stderr
        assert agentlane(restored_url, "replay", "verify").returncode == 0
    finally:
        for server in (restored, primary):
            if server is not None:
                server.stop(mode="immediate")
    print(f"\nrestore drill: {good} events restored; " + ", ".join(
        f"{step} {seconds:.1f} s" for step, seconds in took.items()
    ))
