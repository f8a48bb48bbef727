"""One trace from the POST to the socket frame, through ``agentlane dev`` as a user runs it.

The stack exports with its real OTLP exporter to a receiver in this process. One POST carries a
``traceparent``; every span the run causes must be in that trace, each linked to its parent: the
command service's request and append, the runner's advance, its model step and the openai SDK's
call, the projector (and, over Pub/Sub, its publish), and the gateway's frame send. The run's
events carry the trace, ``--json`` log lines inside the run's spans name it in Cloud Logging's
fields, and the request's latency bucket carries it as an OpenMetrics exemplar.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from agentlane.cli.embedded_pg import free_port
from tests.dev.model_server import ModelServer
from tests.dev.test_dev_e2e import (
    DevStack,
    _bus_params,
    _start,
    _until_ready,
    _until_terminal,
)
from tests.fixtures.otlp_receiver import OtlpReceiver, ReceivedSpan

TRACE = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN = "b7ad6b7169203331"
CALLER = f"00-{TRACE}-{CALLER_SPAN}-01"


@pytest.fixture
def receiver() -> OtlpReceiver:
    server = OtlpReceiver()
    server.start()
    yield server  # type: ignore[misc]
    server.stop()


async def _spans_until(
    receiver: OtlpReceiver, wanted: set[tuple[str, str]], parents: set[tuple[str, str]],
    timeout_s: float = 30,
) -> list[ReceivedSpan]:
    """The trace's spans, once every (service, span name) of ``wanted`` arrived and a span of
    each (name, parent span id) of ``parents`` (spans are exported in batches, each process on
    its own schedule: one span of a name is not all of them)."""
    deadline = time.monotonic() + timeout_s
    while True:
        spans = receiver.spans(TRACE)
        have = {(s.service, s.name) for s in spans}
        children = {(s.name, s.parent_span_id) for s in spans}
        if wanted <= have and parents <= children:
            return spans
        assert time.monotonic() < deadline, (
            f"missing {sorted(wanted - have)} {sorted(parents - children)}; have {sorted(have)}"
        )
        await asyncio.sleep(0.2)


@pytest.mark.slow
@pytest.mark.parametrize("bus", _bus_params())
async def test_one_trace_from_the_post_to_the_socket_frame(
    bus: str,
    tmp_path: Path,
    model_server: ModelServer,
    receiver: OtlpReceiver,
    stacks: list[DevStack],  # after the receiver: the stack stops first
) -> None:
    data_dir, port = tmp_path / ".agentlane", free_port()
    env = {
        "AGENTLANE_BUS": bus,
        "AGENTLANE_SHARDS": "8",
        "OPENAI_BASE_URL": model_server.base_url,
        "OPENAI_API_KEY": "sk-loopback",
        "AGENTLANE_MODEL": "loopback-model",
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }
    stack = _start(data_dir, port, env, tmp_path, "dev", "--json", "--runners", "1")
    stacks.append(stack)

    async with httpx.AsyncClient(base_url=stack.http, timeout=10) as http:
        async with connect(stack.ws("traced")) as ws:
            assert await _until_ready(ws) == []
            response = await http.post(
                "/agents/traced/runs", json={"runId": "run-1", "message": "hello"},
                headers={"traceparent": CALLER},
            )
            assert response.status_code == 202, response.text
            execution = response.json()["executionId"]
            live = await _until_terminal(ws, execution)
        # The request's latency bucket points at its trace, for a scraper that takes OpenMetrics.
        metrics = await http.get(
            "/metrics", headers={"accept": "application/openmetrics-text; version=1.0.0"}
        )
        assert metrics.headers["content-type"].startswith("application/openmetrics-text")
        exemplars = [
            line for line in metrics.text.splitlines()
            if line.startswith("agentlane_http_request_duration_seconds_bucket")
            and 'route="/agents/{sessionId}/runs"' in line and f'trace_id="{TRACE}"' in line
        ]
        assert exemplars, "no exemplar with the request's trace"
    assert live[-1]["type"] == "Completed", live

    # Every event of the run names a span of the caller's trace (outside the hash chain).
    assert all(e["traceparent"].split("-")[1] == TRACE for e in live), live

    wanted = {
        ("agentlane-edge", "POST /agents/{sessionId}/runs"),
        ("agentlane-edge", "append"),
        ("agentlane-runner", "advance run"),
        ("agentlane-runner", "step model"),
        ("agentlane-projector", "project events"),
        ("agentlane-edge", "send frames"),
    }
    if bus == "pubsub":
        wanted.add(("agentlane-projector", "publish events"))
    # The frame of the run's last event is sent under the span that appended it.
    completed_by = live[-1]["traceparent"].split("-")[2]
    spans = await _spans_until(receiver, wanted, {("send frames", completed_by)})
    by_id = {s.span_id: s for s in spans}

    def parent(span: ReceivedSpan) -> ReceivedSpan:
        assert span.parent_span_id in by_id, f"{span.name}: parent not in the trace"
        return by_id[span.parent_span_id]

    def one(service: str, name: str) -> ReceivedSpan:
        found = [s for s in spans if (s.service, s.name) == (service, name)]
        assert found, (service, name)
        return found[0]

    # The request continues the caller's span, and the run continues the request's append.
    request = one("agentlane-edge", "POST /agents/{sessionId}/runs")
    assert request.parent_span_id == CALLER_SPAN
    accepted = next(e for e in live if e["type"] == "RunAccepted")
    accepted_span = accepted["traceparent"].split("-")[2]
    assert by_id[accepted_span].name == "append" and parent(by_id[accepted_span]) == request
    advance = one("agentlane-runner", "advance run")
    assert advance.parent_span_id == accepted_span
    step = one("agentlane-runner", "step model")
    assert parent(step) == advance
    # The span of the model call, made by the openai SDK's instrumentation, inside the step.
    model_calls = [s for s in spans if s.attributes.get("gen_ai.operation.name") == "chat"]
    assert model_calls and all(parent(call) == step for call in model_calls), spans
    assert model_calls[0].attributes["gen_ai.request.model"] == "loopback-model"
    # The projector and the gateway work on the events the runner appended: children of the
    # spans those events name.
    appended_by = {e["traceparent"].split("-")[2] for e in live}
    for service, name in [("agentlane-projector", "project events"),
                          ("agentlane-edge", "send frames")]:
        assert {s.parent_span_id for s in spans if (s.service, s.name) == (service, name)} <= (
            appended_by
        ), name
    completed_span = by_id[completed_by]
    assert completed_span.service == "agentlane-runner"
    assert any(
        s.name == "send frames" and s.parent_span_id == completed_span.span_id for s in spans
    ), "the Completed frame's send is not in the trace"
    if bus == "pubsub":
        # Pub/Sub's client traces its publish of each message into the event's trace.
        assert any(s.scope.startswith("google.cloud.pubsub") for s in spans), {
            s.scope for s in spans
        }

    # The runner's line about the run's end carries the trace in Cloud Logging's fields.
    lines = [json.loads(line) for line in stack.proc.log().splitlines() if line.startswith("{")]
    ended = [
        line for line in lines
        if line.get("message") == "run completed" and line.get("execution") == execution
    ]
    assert ended, "no 'run completed' line"
    # "projects/P/traces/T" when the project is known (the pubsub stack sets one), else "T".
    assert ended[0]["logging.googleapis.com/trace"].split("/")[-1] == TRACE
    assert ended[0]["logging.googleapis.com/spanId"] == advance.span_id
    assert ended[0]["severity"] == "INFO" and ended[0]["time"].endswith("Z")
