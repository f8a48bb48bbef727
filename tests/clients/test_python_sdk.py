"""The Python client (clients/python, ``agentlane_client``) against a live ``agentlane dev``: the
sync and the async paths, a folded stream, an approval, a cancel, typed events that resume, typed
errors; and its fold gives the recorded crash log the transcript the core gives it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from agentlane_client import (
    AsyncClient,
    BadRequest,
    Client,
    CompletedEvent,
    Conflict,
    Ended,
    Event,
    Forbidden,
    NotFound,
    Reset,
    RunAcceptedEvent,
    TextDelta,
    TokenEvent,
    ToolCalled,
    ToolReturned,
    UsageEvent,
    Waiting,
    parse_event,
)
from agentlane_client import Transcript as ClientTranscript
from agentlane_client._errors import raise_for_problem

from agentlane.cli.embedded_pg import free_port
from agentlane.transcript import transcript_of
from tests.dev.test_dev_e2e import DevStack

FIXTURES = Path(__file__).parent.parent / "fixtures" / "transcripts"


def _rendered(changes: list[object]) -> str:
    shown: dict[int, str] = {}
    for change in changes:
        if isinstance(change, TextDelta):
            shown[change.step] = shown.get(change.step, "") + change.text
        elif isinstance(change, Reset):
            shown[change.step] = ""
    return "".join(shown[s] for s in sorted(shown))


@pytest.mark.slow
def test_the_sync_client_streams_a_run_and_reads_it_back(stack: DevStack) -> None:
    with Client(stack.http) as client:
        changes = list(client.runs.stream("sync-1", "hello there", run_id="sync-run-1"))
        assert isinstance(changes[-1], Ended) and changes[-1].status == "completed"
        assert _rendered(changes) == changes[-1].answer == "(offline) You said: hello there"
        events, after = client.sessions.page("sync-1")
        execution = events[0].execution_id
        assert execution is not None and after is None
        run = client.runs.get(execution)
        assert run.status == "completed" and run.answer == changes[-1].answer
        # agentlane dev prices the offline model: the run's cost, and its session's once the
        # projector has it.
        assert run.usage.cost_micros > 0
        deadline = time.monotonic() + 10
        while (usage := client.sessions.usage("sync-1")).runs < 1:
            assert time.monotonic() < deadline, "the session's usage never arrived"
            time.sleep(0.1)
        assert usage.usage == run.usage
        # The same runId again is the same run: nothing new starts.
        again = client.runs.create("sync-1", "hello there", run_id="sync-run-1")
        assert again.execution_id == execution
        # Typed events, history then live; resumed after a given eventId.
        typed = []
        for event in client.sessions.events("sync-1", after=events[1].event_id):
            typed.append(event)
            if event.is_terminal:
                break
        assert [e.seq for e in typed] == list(range(3, events[-1].seq + 1))
        assert typed[-1].type == "Completed" and typed[-1].data["answer"] == run.answer
        with pytest.raises(NotFound) as missing:
            client.runs.get("ex_nope")
        assert missing.value.status == 404 and missing.value.type == "not-found"
        with pytest.raises(BadRequest) as bad:
            client.runs.create("sync-1", "")
        assert bad.value.status == 422
        assert client.runs.cancel(execution) is None  # it had ended


@pytest.mark.slow
async def test_the_async_client_approves_a_tool_call_and_cancels_a_waiting_run(
    stack: DevStack,
) -> None:
    async with AsyncClient(stack.http) as client:
        accepted = await client.runs.create("async-1", "call send_email")
        changes = []
        async for change in client.runs.follow(accepted):
            changes.append(change)
            if isinstance(change, Waiting):
                assert change.reason == "approval"
                # A run in progress: a start that must not wait behind it is refused.
                with pytest.raises(Conflict):
                    await client.runs.create("async-1", "again", on_conflict="reject")
                call = next(c for c in changes if isinstance(c, ToolCalled))
                assert call.requires_approval and call.name == "send_email"
                await client.runs.approve(accepted.execution_id, call.call_id)
        result = next(c for c in changes if isinstance(c, ToolReturned))
        assert result.ok and result.name == "send_email"
        assert isinstance(changes[-1], Ended) and changes[-1].status == "completed"
        assert (await client.runs.get(accepted.execution_id)).status == "completed"

        waiting = await client.runs.create("async-2", "call send_email")
        async for change in client.runs.follow(waiting):
            if isinstance(change, Waiting):
                assert await client.runs.cancel(waiting.execution_id, reason="no") is not None
            if isinstance(change, Ended):
                assert change.status == "cancelled" and change.reason == "no"


@pytest.mark.slow
async def test_an_approval_nobody_answers_is_denied_at_its_deadline_by_the_runner(
    stack: DevStack,
) -> None:
    async with AsyncClient(stack.http) as client:
        accepted = await client.runs.create(
            "deadline-1", "call send_email", approval_timeout_s=1.5
        )
        changes = [change async for change in client.runs.follow(accepted)]
        # Nobody approved: the runner took the run up again at the deadline, on its own.
        assert any(isinstance(c, Waiting) and c.reason == "approval" for c in changes)
        result = next(c for c in changes if isinstance(c, ToolReturned))
        assert not result.ok and result.error == "not approved: the approval deadline passed"
        assert isinstance(changes[-1], Ended) and changes[-1].status == "completed"
        events, _ = await client.sessions.page("deadline-1")
        suspended = next(e for e in events if e.type == "Suspended")
        resumed = next(e for e in events if e.type == "Resumed")
        assert resumed.data["reason"] == "deadline"
        assert resumed.created_at >= datetime.fromisoformat(suspended.data["deadline"])


@pytest.mark.slow
async def test_a_runs_events_come_typed(stack: DevStack) -> None:
    """Over the socket and over HTTP, each event of a run is the model of its type; a type the
    client does not know stays an untyped Event."""
    async with AsyncClient(stack.http) as client:
        accepted = await client.runs.create("typed-1", "hello typed events", run_id="typed-run-1")
        streamed = []
        async for event in client.sessions.events("typed-1"):
            streamed.append(event)
            if event.is_terminal:
                break
        paged, _ = await client.sessions.page("typed-1")
    for events in (streamed, paged):
        typed = [event.typed for event in events]
        assert [t for t in typed if isinstance(t, Event)] == []  # nothing left untyped
        assert [t.event_id for t in typed] == [e.event_id for e in events]
        assert isinstance(typed[0], RunAcceptedEvent)
        assert typed[0].data.run_id == "typed-run-1"
        assert typed[0].execution_id == accepted.execution_id
        tokens = [t for t in typed if isinstance(t, TokenEvent)]
        completed = typed[-1]
        assert isinstance(completed, CompletedEvent)
        assert completed.data.answer == "(offline) You said: hello typed events"
        assert len(tokens) > 1  # the offline model streams word by word
        assert "".join(t.data.text for t in tokens) == completed.data.answer
        usage = [t for t in typed if isinstance(t, UsageEvent)]
        # agentlane dev prices the offline model.
        assert usage and all(u.data.cost_micros and u.data.cost_micros > 0 for u in usage)
    unknown = {**paged[-1].wire(), "type": "Forecast", "data": {"weather": "fine"}}
    assert type(parse_event(unknown)) is Event
    assert Event.model_validate(unknown).typed.data == {"weather": "fine"}


def test_the_clients_fold_gives_every_recorded_log_the_cores_transcript() -> None:
    for path in sorted(FIXTURES.glob("*.events.json")):
        events = json.loads(path.read_text())
        folded = ClientTranscript()
        for event in events:
            folded.apply(event)
        assert folded.to_json() == transcript_of(events).to_json(), path.name


@pytest.mark.slow
def test_the_pipelines_smoke_test_passes_against_a_live_stack(stack: DevStack) -> None:
    script = Path(__file__).parent.parent.parent / "scripts" / "smoke.py"
    passed = subprocess.run(
        [sys.executable, str(script), "--url", stack.http, "--timeout", "60"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert passed.returncode == 0 and passed.stdout.startswith("smoke: ok, run ex_"), (
        passed.stdout + passed.stderr
    )
    failed = subprocess.run(
        [sys.executable, str(script), "--url", f"http://127.0.0.1:{free_port()}", "--timeout",
         "10"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert failed.returncode == 1
    assert failed.stdout.startswith("smoke: FAILED") and len(failed.stdout.splitlines()) == 1


@pytest.mark.slow
def test_the_client_forks_a_session_and_the_fork_remembers_the_parent(stack: DevStack) -> None:
    with Client(stack.http) as client:
        answer = list(client.runs.stream("fork-parent", "my name is Ada"))[-1]
        assert isinstance(answer, Ended) and answer.status == "completed"
        events, _ = client.sessions.page("fork-parent")
        fork = client.sessions.fork("fork-parent", events[-1].event_id, "fork-child")
        assert fork.session_id == "fork-child" and fork.parent_session_id == "fork-parent"
        assert client.sessions.fork("fork-parent", events[-1].event_id, "fork-child") == fork
        (first,) = client.sessions.page("fork-child")[0]
        assert first.type == "SessionForked" and first.event_id == fork.event_id
        with pytest.raises(BadRequest):
            client.sessions.fork("fork-parent", events[-1].event_id, "fork-parent")


@pytest.mark.slow
def test_an_operator_reads_the_overview_and_a_403_is_typed(stack: DevStack) -> None:
    with Client(stack.http) as client:  # agentlane dev runs without auth: everyone operates
        overview = client.operations.overview(days=1)
        assert sum(len(r["shards"]) for r in overview["runners"]) == overview["shards"]["held"]
        assert overview["shards"]["count"] == 64
    # A 403 problem (a tenant's token on an operator's route) is its own error type.
    answer = httpx.Response(
        403, json={"type": "https://agentlane.dev/problems/forbidden", "title": "Forbidden",
                   "status": 403, "detail": "operators only"},
    )
    with pytest.raises(Forbidden) as refused:
        raise_for_problem(answer)
    assert refused.value.status == 403 and "operators only" in str(refused.value)


@pytest.mark.slow
def test_a_long_message_and_its_answer_are_blobs_the_client_fetches_and_checks(
    stack: DevStack,
) -> None:
    message = "blob:" + "y" * 40_000  # one word: the offline model streams it at once
    with Client(stack.http) as client:
        ended = list(client.runs.stream("sdk-blob", message))[-1]
        assert isinstance(ended, Ended) and ended.status == "completed"
        assert ended.answer is None and ended.answer_ref is not None
        assert client.blobs.get(ended.answer_ref) == f"(offline) You said: {message}"
        accepted = client.sessions.page("sdk-blob")[0][0]
        assert accepted.type == "RunAccepted" and accepted.data["message"] is None
        assert client.blobs.get(accepted.data["messageRef"]) == message
        with pytest.raises(NotFound):
            client.blobs.get("0" * 64)
