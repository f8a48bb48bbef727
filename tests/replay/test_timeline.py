"""``replay session`` / ``replay run``: the state after each event is the pure fold of the events
up to it; ``--until`` stops there; a person gets a table, a machine NDJSON/JSON."""

from __future__ import annotations

import json

import pytest

from agentlane.folds import fold_run, fold_session
from agentlane.store import EventStore
from agentlane.transcript import transcript_of
from tests.replay.conftest import Seeded, replay_in_process

Capture = pytest.CaptureFixture[str]


async def test_session_json_folds_after_each_event_and_travels_in_time(
    store: EventStore,
    seeded: Seeded,
    database_url: str,
    capsys: Capture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = database_url
    events = await store.read_session("default", "s2")
    until = events[9]  # r4's RunStarted
    code, out, err = replay_in_process(
        url, "session", "s2", "--json", "--until", str(until.event_id),
        capsys=capsys, monkeypatch=monkeypatch,
    )
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["event"] for line in lines] == [e.to_json() for e in events[:10]]
    for index, line in enumerate(lines):
        upto = events[: index + 1]
        mine = [e for e in upto if e.execution_id == upto[-1].execution_id]
        run = fold_run(mine)
        assert line["run"] == (run.to_json() if run else None)
        session = fold_session(upto)
        assert session is not None and line["session"] == session.to_json()
    assert lines[-1]["run"]["status"] == "running"
    assert lines[-1]["session"]["runCount"] == 2


async def test_session_table_for_people(
    store: EventStore,
    seeded: Seeded,
    database_url: str,
    capsys: Capture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code, table, err = replay_in_process(
        database_url, "session", "s1", capsys=capsys, monkeypatch=monkeypatch
    )
    assert code == 0, err
    assert "session default/s1" in table
    assert "3 Tokens" in table and "'t0 t1 t2 '" in table  # consecutive tokens share a row
    assert "'answer r2'" in table and "completed" in table
    assert "session state after the last event" in table


async def test_run_json_is_the_journal_and_final_state(
    store: EventStore,
    seeded: Seeded,
    database_url: str,
    capsys: Capture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ex = seeded.runs[("acme", "s1")][0]
    code, out, err = replay_in_process(
        database_url, "run", ex, "--json", capsys=capsys, monkeypatch=monkeypatch
    )
    assert code == 0, err
    body = json.loads(out)
    journal = await store.read_execution("acme", ex)
    assert body["events"] == [e.to_json() for e in journal]
    final = fold_run(journal)
    assert final is not None and body["state"] == final.to_json()
    assert body["state"]["status"] == "failed" and body["state"]["error"] == "boom"
    # What a reader was shown, by the same fold every client uses.
    assert body["transcript"] == transcript_of(body["events"]).to_json()
    assert body["transcript"]["status"] == "failed" and body["transcript"]["reason"] == "boom"
