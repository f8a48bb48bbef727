"""``agentlane replay what-if``: one recorded run again against another model, through the real
openai SDK and the loopback server, the CLI as a process: the recorded tool results are fed back
where the calls match (the tool never runs again), the diff is reported, nothing is written."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from runners.agent import Tool
from runners.api import Outcome
from runners.engine import StepInfo
from tests.conftest import TEST_SHARDS
from tests.engine.conftest import Harness, fast_options, loopback_executor
from tests.fixtures.openai_server import OpenAIServer, Reply


class Order(BaseModel):
    item: str


async def _recorded(harness: Harness, server: OpenAIServer, ordered: list[str]) -> str:
    """A run on m-1 that calls ``place_order`` (a side effect: it appends to ``ordered``)."""

    async def place_order(step: StepInfo, arguments: Order) -> dict[str, Any]:
        ordered.append(arguments.item)
        return {"order": 17, "item": arguments.item}

    tool = Tool("place_order", "Place an order.", Order, place_order)
    server.push(Reply.tool_call("place_order", {"item": "tea"}, call_id="call_A"),
                Reply.answer("Ordered tea: order 17."))
    executor = loopback_executor(harness, server, fast_options(extra_tools=(tool,)))
    run = await harness.start("r1", "order me a tea")
    assert await harness.advance(executor, run) is Outcome.COMPLETED
    return run.execution_id


def _what_if(database_url: str, server: OpenAIServer, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "agentlane.cli", "replay", "--database-url", database_url,
         "what-if", "s-1", "--tenant", "acme", "--json", *args],
        capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "AGENTLANE_SHARDS": str(TEST_SHARDS),
             "OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "sk-test"},
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


async def test_a_what_if_feeds_recorded_tool_results_and_writes_nothing(
    harness: Harness, openai_server: OpenAIServer, database_url: str, tmp_path: Path
) -> None:
    ordered: list[str] = []
    execution = await _recorded(harness, openai_server, ordered)
    before = await harness.store.read_session(harness.tenant, "s-1")
    recorded_calls = len(openai_server.requests)

    # m-2 asks for the same call (answered from the recording), then answers differently.
    openai_server.push(Reply.tool_call("place_order", {"item": "tea"}, call_id="call_X"),
                       Reply.answer("Your tea is on its way (order 17)."))
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("You are terse.")
    diff = await asyncio.to_thread(
        _what_if, database_url, openai_server, "--run", "r1", "--model", "m-2",
        "--prompt", str(prompt),
    )
    assert diff["executionId"] == execution
    recorded, tried = diff["recorded"], diff["whatIf"]
    assert recorded["answer"] == "Ordered tea: order 17." and recorded["model"] == "m-1"
    assert tried["answer"] == "Your tea is on its way (order 17)." and tried["model"] == "m-2"
    assert tried["toolCalls"] == recorded["toolCalls"] == ['place_order({"item":"tea"})']
    assert tried["unrecorded"] == [] and tried["modelCalls"] == recorded["modelCalls"] == 2
    assert tried["inputTokens"] > 0 and tried["outputTokens"] > 0
    # The tool never ran again: its recorded result went to m-2, in m-2's own call's id.
    assert ordered == ["tea"]
    what_if_requests = openai_server.requests[recorded_calls:]
    assert [r.body["model"] for r in what_if_requests] == ["m-2", "m-2"]
    assert what_if_requests[0].body["messages"][0] == {"role": "system",
                                                       "content": "You are terse."}
    fed = what_if_requests[1].body["messages"][-1]
    assert fed["role"] == "tool" and fed["tool_call_id"] == "call_X"
    assert json.loads(fed["content"]) == {"order": 17, "item": "tea"}
    assert await harness.store.read_session(harness.tenant, "s-1") == before


async def test_a_call_the_recording_does_not_hold_is_answered_with_an_error_and_reported(
    harness: Harness, openai_server: OpenAIServer, database_url: str
) -> None:
    ordered: list[str] = []
    await _recorded(harness, openai_server, ordered)
    recorded_calls = len(openai_server.requests)
    openai_server.push(Reply.tool_call("place_order", {"item": "coffee"}, call_id="call_Y"),
                       Reply.answer("I could not order coffee."))
    diff = await asyncio.to_thread(
        _what_if, database_url, openai_server, "--run", "r1", "--model", "m-3"
    )
    assert diff["whatIf"]["unrecorded"] == ['place_order({"item":"coffee"})']
    fed = openai_server.requests[recorded_calls + 1].body["messages"][-1]
    assert json.loads(fed["content"])["error"].startswith("what-if: the recorded run has no")
    assert ordered == ["tea"]
