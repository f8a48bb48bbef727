"""Bad usage exits 2 with one line; a failed lookup exits 1 with one line; never a traceback."""

from __future__ import annotations

import pytest

from tests.replay.conftest import replay, replay_in_process


def test_bad_arguments_exit_2_with_one_line(database_url: str) -> None:
    for args, expected in (
        (("export", "--since", "yesterday"), "invalid time 'yesterday'"),
        (("frobnicate",), "invalid choice: 'frobnicate'"),
    ):
        result = replay(database_url, *args)
        assert result.returncode == 2, (args, result.stderr)
        assert expected in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and result.stdout == ""


def test_unknown_session_exits_1_and_bad_ids_exit_2(
    database_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = replay_in_process(
        database_url, "session", "nobody", "--tenant", "t", capsys=capsys, monkeypatch=monkeypatch
    )
    assert (code, out) == (1, "")
    assert err == "agentlane replay: session 'nobody' of tenant 't': no events found\n"
    for args in (("session", "s1", "--until", "-3"), ("verify", "--jobs", "lots"), ()):
        code, out, err = replay_in_process(
            database_url, *args, capsys=capsys, monkeypatch=monkeypatch
        )
        assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, (args, err)


@pytest.mark.parametrize(
    "args",
    [("export",), ("session", "s1", "--tenant", "t"), ("verify",), ("run", "e1")],
)
def test_an_unmigrated_database_gets_one_line_not_a_traceback(
    empty_database_url: str, args: tuple[str, ...], capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Reads on the snapshot fail inside the caller's code, after the snapshot was opened: the
    # translation must cover them too, or psycopg's UndefinedTable escapes as a traceback.
    code, out, err = replay_in_process(
        empty_database_url, *args, capsys=capsys, monkeypatch=monkeypatch
    )
    assert (code, out) == (1, ""), err
    assert err.startswith("agentlane replay: ") and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
