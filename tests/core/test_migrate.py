"""`agentlane migrate`: ordered, recorded, refuses edited history, safe when run concurrently."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from agentlane.errors import ConfigError, MigrationError
from agentlane.migrate import default_ddl_dir, migrate, pending


def run_migrate(url: str, shards: int = 16) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "agentlane.cli", "migrate"],
        env={"DATABASE_URL": url, "AGENTLANE_SHARDS": str(shards), "PATH": "/usr/bin:/bin"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_concurrent_migrates_on_an_empty_database_leave_one_schema(
    empty_database_url: str,
) -> None:
    procs = [run_migrate(empty_database_url) for _ in range(2)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    with psycopg.connect(empty_database_url) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")]
        shards = conn.execute("SELECT count(*) FROM cluster_shards").fetchone()
    expected = sorted(int(p.name[:4]) for p in default_ddl_dir().glob("*.sql"))
    assert versions == expected
    assert shards == (16,)
    applied_by = [out for out, _ in outputs if "nothing to apply" not in out]
    assert len(applied_by) == 1, "exactly one process applied the migrations"


def test_migrate_is_idempotent(empty_database_url: str) -> None:
    first = migrate(empty_database_url, shards=8)
    assert first
    assert migrate(empty_database_url, shards=8) == []
    assert pending(empty_database_url) == []


def test_an_edited_applied_migration_is_refused(empty_database_url: str, tmp_path: Path) -> None:
    ddl = tmp_path / "ddl"
    shutil.copytree(default_ddl_dir(), ddl)
    migrate(empty_database_url, shards=8, ddl_dir=ddl)
    first = sorted(ddl.glob("*.sql"))[0]
    first.write_text(first.read_text() + "\n-- a harmless-looking edit\n")
    with pytest.raises(MigrationError, match="edited after it was applied"):
        migrate(empty_database_url, shards=8, ddl_dir=ddl)


def test_a_failing_migration_leaves_nothing_half_applied(
    empty_database_url: str, tmp_path: Path
) -> None:
    ddl = tmp_path / "ddl"
    shutil.copytree(default_ddl_dir(), ddl)
    (ddl / "9999_broken.sql").write_text("CREATE TABLE half_done (id int);\nSELECT 1/0;\n")
    with pytest.raises(MigrationError, match="9999_broken failed"):
        migrate(empty_database_url, shards=8, ddl_dir=ddl)
    with psycopg.connect(empty_database_url) as conn:
        assert conn.execute("SELECT to_regclass('half_done')").fetchone() == (None,)
        assert conn.execute("SELECT max(version) FROM schema_migrations").fetchone()[0] < 9999


def test_a_different_shard_count_refuses_to_start(empty_database_url: str) -> None:
    migrate(empty_database_url, shards=8)
    with pytest.raises(
        ConfigError, match="AGENTLANE_SHARDS=64 but this database was created with 8"
    ):
        migrate(empty_database_url, shards=64)
    proc = run_migrate(empty_database_url, shards=64)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert err.strip().count("\n") == 0 and "AGENTLANE_SHARDS=64" in err


def test_cli_reports_an_unreachable_database_in_one_line() -> None:
    proc = run_migrate("postgresql://nobody:hunter2@127.0.0.1:1/none")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "hunter2" not in err, "secrets never reach the output"
    assert err.startswith("agentlane migrate: database unavailable") and err.count("\n") == 1
