"""The dev stack's embedded database: kept on its port across restarts, recovered when a killed
stack left it running, and stopped at the end."""

from __future__ import annotations

from pathlib import Path

import psycopg

from agentlane.cli.dev import database
from agentlane.cli.embedded_pg import EmbeddedPostgres
from agentlane.settings import Settings


def test_database_survives_restarts_and_a_server_left_running(tmp_path: Path) -> None:
    settings = Settings.from_env({})
    with database(settings, tmp_path) as first_url:
        with psycopg.connect(first_url, autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (note text)")
            conn.execute("INSERT INTO kept VALUES ('before the crash')")
    server = EmbeddedPostgres(tmp_path / "pgdata", port=int((tmp_path / "pg.port").read_text()))
    assert not server.is_running(), "the block stops its server"

    # A dev stack SIGKILLed mid-run leaves its server up; the next start takes it over.
    server.start()
    with database(settings, tmp_path) as second_url:
        assert second_url == first_url, "the data directory keeps its port"
        with psycopg.connect(second_url, autocommit=True) as conn:
            assert conn.execute("SELECT note FROM kept").fetchall() == [("before the crash",)]
    assert not server.is_running()


def test_database_url_wins_over_the_embedded_server(tmp_path: Path) -> None:
    settings = Settings.from_env({"DATABASE_URL": "postgresql://elsewhere/db"})
    with database(settings, tmp_path) as url:
        assert url == "postgresql://elsewhere/db"
    assert not (tmp_path / "pgdata").exists()
