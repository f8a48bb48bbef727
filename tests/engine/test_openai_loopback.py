"""The agent on the real openai SDK against the loopback server: streaming, tools, faults."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from agentlane.settings import Settings
from runners.agent.model import _as_text
from runners.api import Outcome
from runners.engine import RetryPolicy
from runners.workflows import build_executor
from tests.conftest import TEST_SHARDS
from tests.engine.conftest import Harness, fast_options, loopback_executor
from tests.fixtures.openai_server import OpenAIServer, Reply


async def test_streamed_answer_with_a_tool_call(
    harness: Harness, openai_server: OpenAIServer
) -> None:
    long_answer = " ".join(f"w{i}" for i in range(80))
    openai_server.push(
        Reply.tool_call("calculator", {"expression": "6 * 7"}, call_id="call_A"),
        Reply.answer(long_answer),
    )
    executor = loopback_executor(harness, openai_server)
    run = await harness.start("r1", "what is six times seven?")
    assert await harness.advance(executor, run) is Outcome.COMPLETED
    events = await harness.events(run)
    by_type = {e.type: e for e in events}
    assert by_type["Completed"].data == {"answer": long_answer, "offline": False}
    assert by_type["ToolCall"].data["arguments"] == {"expression": "6 * 7"}
    assert by_type["ToolResult"].data["result"] == {"expression": "6 * 7", "value": 42}
    tokens = [e for e in events if e.type == "Token"]
    # 80 streamed words arrive as a few batched events, never one row per token.
    assert 2 <= len(tokens) <= 10
    assert "".join(t.data["text"] for t in tokens) == long_answer
    usage = [e.data for e in events if e.type == "Usage"]
    assert len(usage) == 2
    assert usage[0] == {"model": "m-1", "inputTokens": 12, "outputTokens": 7,
                        "cachedInputTokens": 3, "step": 0, "costMicros": None,
                        "priceVersion": None}
    # The step key reaches the server on every call: an idempotency header and ``user``.
    first, second = openai_server.requests
    assert first.headers["idempotency-key"] == f"{run.execution_id}:0"
    assert first.body["user"] == f"{run.execution_id}:0"
    assert second.headers["idempotency-key"] == f"{run.execution_id}:2"
    assert {t["function"]["name"] for t in first.body["tools"]} >= {"calculator", "current_time"}
    calculator = next(t for t in first.body["tools"] if t["function"]["name"] == "calculator")
    assert calculator["function"]["parameters"]["required"] == ["expression"]
    # The second call carries the tool's answer back to the model.
    assert second.body["messages"][-1]["role"] == "tool"
    assert second.body["messages"][-1]["tool_call_id"] == "call_A"


async def test_faults_are_retried_and_each_attempt_is_journaled(
    harness: Harness, openai_server: OpenAIServer
) -> None:
    openai_server.push(
        Reply.error(429, retry_after="1"),
        Reply.error(500),
        Reply.hang(),
        Reply.cut("this answer is cut short", after=3),
        Reply.answer("finally"),
    )
    executor = loopback_executor(harness, openai_server)
    run = await harness.start("r1", "hello")
    assert await harness.advance(executor, run) is Outcome.COMPLETED
    events = await harness.events(run)
    failures = [e.data for e in events if e.type == "StepFailed"]
    assert [f["attempt"] for f in failures] == [1, 2, 3, 4]
    assert all(f["retryable"] and f["step"] == 0 for f in failures)
    assert "429" in failures[0]["error"]
    assert "500" in failures[1]["error"]
    assert "timeout" in failures[2]["error"].lower()
    assert "StreamCut" in failures[3]["error"]
    completed = next(e for e in events if e.type == "StepCompleted")
    assert completed.data["attempts"] == 5
    assert events[-1].type == "Completed" and events[-1].data["answer"] == "finally"
    # Retry-After: 1 was honoured (the SDK's own retries are off: five requests, five attempts).
    times = [r.at for r in openai_server.requests]
    assert len(times) == 5
    assert times[1] - times[0] >= 0.9
    # The cut attempt streamed tokens before it broke; they are tagged with their attempt.
    assert any(e.data.get("attempt") == 4 for e in events if e.type == "Token")


async def test_spent_retry_budget_fails_the_run_with_a_reason(
    harness: Harness, openai_server: OpenAIServer
) -> None:
    openai_server.push(Reply.error(500), Reply.error(502), Reply.error(503))
    options = fast_options(model_retry=RetryPolicy(max_attempts=3,
                                                   initial_interval=timedelta(milliseconds=10)))
    executor = loopback_executor(harness, openai_server, options)
    run = await harness.start("r1", "hello")
    assert await harness.advance(executor, run) is Outcome.FAILED
    events = await harness.events(run)
    failures = [e.data for e in events if e.type == "StepFailed"]
    assert [(f["attempt"], f["retryable"]) for f in failures] == [(1, True), (2, True), (3, False)]
    assert events[-1].type == "Failed"
    assert "model" in events[-1].data["reason"] and "3 attempt" in events[-1].data["reason"]
    assert await harness.index_row(run) is None


async def test_a_client_error_is_not_retried(
    harness: Harness, openai_server: OpenAIServer
) -> None:
    openai_server.push(Reply.error(400))
    executor = loopback_executor(harness, openai_server)
    run = await harness.start("r1", "hello")
    assert await harness.advance(executor, run) is Outcome.FAILED
    failures = [e.data for e in await harness.events(run) if e.type == "StepFailed"]
    assert len(failures) == 1 and failures[0]["retryable"] is False
    assert len(openai_server.requests) == 1


async def test_fallback_model_takes_the_last_attempt(
    harness: Harness, openai_server: OpenAIServer
) -> None:
    openai_server.push(Reply.error(500), Reply.answer("from the fallback"))
    options = fast_options(
        fallback_model="m-fallback",
        model_retry=RetryPolicy(max_attempts=2, initial_interval=timedelta(milliseconds=10)),
    )
    executor = loopback_executor(harness, openai_server, options)
    run = await harness.start("r1", "hello")
    assert await harness.advance(executor, run) is Outcome.COMPLETED
    assert [r.body["model"] for r in openai_server.requests] == ["m-1", "m-fallback"]
    usage = next(e for e in await harness.events(run) if e.type == "Usage")
    assert usage.data["model"] == "m-fallback"


async def test_a_long_retry_after_unloads_the_run_until_then(
    harness: Harness, openai_server: OpenAIServer
) -> None:
    openai_server.push(Reply.error(429, retry_after="3"), Reply.answer("later"))
    executor = loopback_executor(harness, openai_server)
    run = await harness.start("r1", "hello")
    assert await harness.advance(executor, run) is Outcome.SLEEPING
    failure = next(e for e in await harness.events(run) if e.type == "StepFailed")
    _, wake_at = await harness.index_row(run)
    assert wake_at.isoformat() == failure.data["retryAt"].replace("Z", "+00:00")
    assert (wake_at - failure.created_at).total_seconds() >= 2.9
    # Too early: still sleeping, nothing called, nothing written.
    assert await harness.advance(executor, run) is Outcome.SLEEPING
    assert len(openai_server.requests) == 1
    await harness.sleep_until(wake_at)
    assert await harness.advance(executor, run) is Outcome.COMPLETED
    assert len(openai_server.requests) == 2


async def test_cancel_during_a_model_stream_ends_the_run_promptly(
    harness: Harness, openai_server: OpenAIServer
) -> None:
    # 400 words at 50 ms each: 20 s of streaming unless the cancel cuts it short.
    slow = " ".join(f"w{i}" for i in range(400))
    openai_server.push(Reply.answer(slow, chunk_delay_s=0.05))
    executor = loopback_executor(harness, openai_server,
                                 fast_options(request_timeout=timedelta(seconds=30)))
    run = await harness.start("r1", "tell me a long story")
    wake = asyncio.Event()
    advancing = asyncio.create_task(harness.advance(executor, run, wake=wake))
    await harness.wait_for(run, lambda events: any(e.type == "Token" for e in events))
    await harness.cancel(run, "user pressed stop")
    wake.set()
    assert await asyncio.wait_for(advancing, 8) is Outcome.CANCELLED
    events = await harness.events(run)
    assert events[-1].type == "Cancelled"
    assert events[-1].data["reason"] == "user pressed stop"
    assert not any(e.type == "StepCompleted" for e in events)
    assert await harness.index_row(run) is None


async def test_build_executor_takes_model_and_fallback_from_settings(
    harness: Harness, openai_server: OpenAIServer
) -> None:
    settings = Settings.from_env({
        "OPENAI_BASE_URL": openai_server.base_url, "OPENAI_API_KEY": "sk-test",
        "AGENTLANE_MODEL": "m-main", "AGENTLANE_MODEL_FALLBACK": "m-spare",
        "AGENTLANE_SHARDS": str(TEST_SHARDS),
    })
    executor = build_executor(harness.db, settings, CollectorRegistry())
    model = executor.registry.get("agent", "1").__self__.model  # type: ignore[attr-defined]
    assert (model.model_for(0), model.model_for(3)) == ("m-main", "m-spare")
    run = await harness.start("r1", "hello")
    assert await harness.advance(executor, run) is Outcome.COMPLETED
    assert [r.body["model"] for r in openai_server.requests] == ["m-main"]


async def test_a_crash_mid_stream_reruns_the_call_with_the_same_step_key(
    harness: Harness, openai_server: OpenAIServer
) -> None:
    slow = " ".join(f"w{i}" for i in range(200))
    openai_server.push(Reply.answer(slow, chunk_delay_s=0.05), Reply.answer("second try"))
    options = fast_options(request_timeout=timedelta(seconds=30))
    run = await harness.start("r1", "hello")
    advancing = asyncio.create_task(
        harness.advance(loopback_executor(harness, openai_server, options), run)
    )
    await harness.wait_for(run, lambda events: any(e.type == "Token" for e in events))
    advancing.cancel()  # the runner process dies mid-stream
    with pytest.raises(asyncio.CancelledError):
        await advancing
    other = loopback_executor(harness, openai_server, options)
    assert await harness.advance(other, run, await harness.fence("runner-b")) is (
        Outcome.COMPLETED
    )
    events = await harness.events(run)
    keys = [r.headers["idempotency-key"] for r in openai_server.requests]
    assert keys == [f"{run.execution_id}:0"] * 2
    # The cut attempt's tokens stay in the journal as attempt 1; the re-run streams as attempt 2.
    assert {e.data["attempt"] for e in events if e.type == "Token"} == {1, 2}
    completed = [e.data for e in events if e.type == "StepCompleted"]
    assert len(completed) == 1 and completed[0]["attempts"] == 2
    assert events[-1].data["answer"] == "second try"


async def test_crashes_mid_stream_do_not_spend_the_retry_budget(
    harness: Harness, openai_server: OpenAIServer
) -> None:
    # Three runner crashes mid-stream, then a 429: the budget (3 attempts) counts only the one
    # failure the engine recorded, so the next try runs, on the main model, and completes.
    slow = " ".join(f"w{i}" for i in range(200))
    options = fast_options(
        fallback_model="m-fallback",
        request_timeout=timedelta(seconds=30),
        model_retry=RetryPolicy(max_attempts=3, initial_interval=timedelta(milliseconds=10)),
    )
    run = await harness.start("r1", "hello")
    for crash in range(1, 4):
        openai_server.push(Reply.answer(slow, chunk_delay_s=0.05))
        advancing = asyncio.create_task(harness.advance(
            loopback_executor(harness, openai_server, options), run,
            await harness.fence(f"runner-{crash}"),
        ))
        await harness.wait_for(run, lambda events, n=crash: any(
            e.type == "Token" and e.data["attempt"] == n for e in events
        ))
        advancing.cancel()  # the runner process dies mid-stream
        with pytest.raises(asyncio.CancelledError):
            await advancing
    openai_server.push(Reply.error(429), Reply.answer("made it"))
    survivor = loopback_executor(harness, openai_server, options)
    assert await harness.advance(survivor, run, await harness.fence("runner-4")) is (
        Outcome.COMPLETED
    )
    events = await harness.events(run)
    assert events[-1].data["answer"] == "made it"
    failures = [e.data for e in events if e.type == "StepFailed" and not e.data.get("abandoned")]
    assert [(f["attempt"], f["retryable"]) for f in failures] == [(4, True)]
    # Tokens keep their attempt tags (1-3 cut by crashes, 5 the answer); no fallback was needed.
    assert {e.data["attempt"] for e in events if e.type == "Token"} == {1, 2, 3, 5}
    # Each attempt a crash cut short is declared abandoned by the runner that takes over, before
    # anything of the next attempt: a reader drops its text then and there.
    for cut in (1, 2, 3):
        ended = next(
            i for i, e in enumerate(events)
            if e.type == "StepFailed" and e.data["attempt"] == cut
        )
        assert events[ended].data["abandoned"] is True and events[ended].data["retryable"]
        assert all(
            e.data["attempt"] == cut for e in events[:ended]
            if e.type == "Token" and e.data["attempt"] >= cut
        )
        assert not any(
            e.type == "Token" and e.data["attempt"] == cut for e in events[ended:]
        )
    assert [r.body["model"] for r in openai_server.requests] == ["m-1"] * 5


def test_a_providers_lone_surrogate_becomes_a_replacement_not_an_unstorable_event() -> None:
    assert _as_text("fine 😀") == "fine 😀"
    assert _as_text("bad \ud800 piece") == "bad ? piece"


async def test_a_providers_refusal_text_never_reaches_the_journal_or_the_logs(
    harness: Harness, openai_server: OpenAIServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A 401 whose text echoes the key and the organisation: the run fails with the status and
    what it means; the provider's words are neither stored (the tenant reads them) nor logged."""
    secret = "Incorrect API key provided: sk-live-SECRET123. Organization org-SECRET456."
    openai_server.push(Reply.error(401, message=secret))
    executor = loopback_executor(harness, openai_server)
    run = await harness.start("r1", "hello")
    assert await harness.advance(executor, run) is Outcome.FAILED
    events = await harness.events(run)
    stored = json.dumps([e.data for e in events])
    assert "SECRET" not in stored and "SECRET" not in caplog.text
    failed = next(e.data for e in events if e.type == "StepFailed")
    assert "401 from" in failed["error"] and "did not accept the API key" in failed["error"]


async def test_a_priced_model_writes_what_each_call_cost_into_its_usage(
    harness: Harness, openai_server: OpenAIServer, tmp_path: Path
) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"version": "t-1", "models": {"m-1": {
        "inputPerMillion": 2.5, "cachedInputPerMillion": 1.25, "outputPerMillion": 10}}}))
    openai_server.push(Reply.answer("hello"))
    executor = loopback_executor(harness, openai_server, env={"AGENTLANE_PRICES_FILE": str(prices)})
    run = await harness.start("r1", "hi")
    assert await harness.advance(executor, run) is Outcome.COMPLETED
    (usage,) = [e.data for e in await harness.events(run) if e.type == "Usage"]
    # The loopback server reports 12 prompt tokens (3 cached) and 7 completion tokens:
    # 9 x 2.5 + 3 x 1.25 + 7 x 10 = 96.25 millionths.
    assert (usage["inputTokens"], usage["cachedInputTokens"], usage["outputTokens"]) == (12, 3, 7)
    assert usage["costMicros"] == 96 and usage["priceVersion"] == "t-1"
