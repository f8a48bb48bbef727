"""A run's own model, tools and system prompt (``RunAccepted.options``), through the real openai
SDK against the loopback server (which answers as whatever model it is asked for): a fork's new
run continues from the parent's state with another model, a narrower tool set and its own prompt,
and its replay makes the same choices; a model the server does not offer is refused."""

from __future__ import annotations

import pytest

from agentlane.commands import Commands
from agentlane.errors import CommandError
from runners.api import DueRun, Outcome
from runners.engine import Replayer
from tests.engine.conftest import Harness, loopback_executor
from tests.fixtures.openai_server import OpenAIServer, Reply


def commands(harness: Harness) -> Commands:
    return Commands(harness.store, harness.run_index, run_models={"m-2", "m-3"})


async def test_a_forks_run_continues_with_its_own_model_tools_and_prompt(
    harness: Harness, openai_server: OpenAIServer
) -> None:
    executor = loopback_executor(harness, openai_server)
    openai_server.push(Reply.answer("Hello Ada."))
    parent = await harness.start("r1", "my name is Ada")
    assert await harness.advance(executor, parent) is Outcome.COMPLETED
    cut = (await harness.events(parent))[-1].event_id

    await commands(harness).fork_session(
        tenant_id=harness.tenant, session_id=harness.session, at_event_id=cut,
        new_session_id="s-fork",
    )
    fork = Harness(harness.db, harness.store, session="s-fork")
    options = {"model": "m-2", "tools": ["current_time"], "systemPrompt": "Answer in French."}
    accepted = await commands(fork).start_run(
        tenant_id=fork.tenant, session_id=fork.session, run_id="r2", message="who am I?",
        options=options,
    )
    run = DueRun(fork.tenant, fork.session, accepted.execution_id, fork.shard)
    # The model asks for a tool the run was not given: the run treats it as unknown.
    openai_server.push(
        Reply.tool_call("calculator", {"expression": "1+1"}), Reply.answer("Vous êtes Ada.")
    )
    seen = len(openai_server.requests)
    assert await fork.advance(executor, run) is Outcome.COMPLETED

    events = await fork.events(run)
    assert events[0].data["options"] == options
    first, second = (request.body for request in openai_server.requests[seen:])
    assert first["model"] == second["model"] == "m-2"
    assert first["messages"][0] == {"role": "system", "content": "Answer in French."}
    # The fork's history is the parent's up to the cut.
    assert [m["content"] for m in first["messages"][1:]] == ["my name is Ada", "Hello Ada.",
                                                             "who am I?"]
    assert [tool["function"]["name"] for tool in first["tools"]] == ["current_time"]
    result = next(e for e in events if e.type == "ToolResult")
    assert result.data["ok"] is False and result.data["error"] == "unknown tool 'calculator'"
    assert {e.data["model"] for e in events if e.type == "Usage"} == {"m-2"}
    assert events[-1].data["answer"] == "Vous êtes Ada."

    # A replay of the recorded run (a golden replay, another runner) makes the same choices.
    replayed = await Replayer(executor.registry).replay(events)
    assert replayed.outcome == "completed" and replayed.data["answer"] == "Vous êtes Ada."


async def test_a_model_the_server_does_not_offer_is_refused_and_nothing_is_written(
    harness: Harness,
) -> None:
    for offered, model in ((commands(harness), "gpt-9"), (harness.commands, "m-2")):
        with pytest.raises(CommandError, match=r"options\.model"):
            await offered.start_run(
                tenant_id=harness.tenant, session_id=harness.session, run_id="r1",
                message="hi", options={"model": model},
            )
    assert not await harness.store.session_exists(harness.tenant, harness.session)
