"""Bad inbound frames get an ``error`` frame and the socket stays open; a frame over 64 KiB is
closed with 1009; the server keeps serving; commands go through the command code path."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from agentlane.events import DATA_MODELS
from agentlane.records import StoredEvent
from gateway.protocol import (
    error_frame,
    event_frame,
    frames_json_schema,
    parse_outbound,
    ping_frame,
    ready_frame,
)
from tests.gateway.harness import gateway_thread
from tests.gateway.test_stream import frames_until

BAD_FRAMES = [
    ("{not json", "invalid_json"),
    ("[1, 2]", "invalid_frame"),
    ('{"type": "dance"}', "unknown_type"),
    ('{"no": "type"}', "unknown_type"),
    ('{"type": "ask", "message": "hi"}', "invalid_frame"),
    ('{"type": "cancel"}', "invalid_frame"),
    ('{"type": "approve", "executionId": "ex_1"}', "invalid_frame"),
    ('{"type": "ask", "runId": "bad id!", "message": "hi"}', "invalid_frame"),
    ('{"type": "cancel", "executionId": "ex_nobody"}', "run_not_found"),
    ('{"type": "approve", "executionId": "ex_nobody", "name": "ok"}', "run_not_found"),
    # Hostile: a lone surrogate (valid JSON, not text), nesting past the parser's depth (a
    # RecursionError used to drop the socket with 1006), NaN.
    ('{"type": "ask", "runId": "r", "message": "\\ud800"}', "invalid_frame"),
    ("[" * 20_000 + "]" * 20_000, "invalid_json"),
    ('{"type": "ask", "runId": "r", "message": NaN}', "invalid_json"),
]


def test_bad_frames_get_an_error_and_the_socket_stays_open(database_url: str) -> None:
    with gateway_thread(database_url) as gw, connect(f"{gw.ws_url}/ws/s") as ws:
        frames_until(ws, lambda f: len(f) == 1)  # ready
        for frame, code in BAD_FRAMES:
            ws.send(frame)
            error = frames_until(ws, lambda f: len(f) == 1)[0]
            assert error["type"] == "error" and error["code"] == code and error["message"], frame
        ws.send(b"\x00binary")
        assert frames_until(ws, lambda f: len(f) == 1)[0]["code"] == "binary_frame"
        # Still open and still streaming.
        events = gw.append("default", "s", ["after"])
        frame_ = frames_until(ws, lambda f: len(f) == 1)[0]
        assert frame_["event"]["eventId"] == events[0].event_id


def test_frame_over_64_kib_closes_with_1009_and_others_are_unaffected(database_url: str) -> None:
    with (
        gateway_thread(database_url) as gw,
        connect(f"{gw.ws_url}/ws/s", max_size=None) as big,
        connect(f"{gw.ws_url}/ws/s") as bystander,
    ):
        frames_until(big, lambda f: len(f) == 1)
        frames_until(bystander, lambda f: len(f) == 1)
        # Just over the limit: small enough to leave the client's socket whole before the server
        # answers 1009 (a 1 MiB frame could still be sending when the server closes: EPIPE).
        big.send(json.dumps({"type": "ask", "runId": "r1", "message": "x" * (65 << 10)}))
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                big.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
        events = gw.append("default", "s", ["still serving"])
        assert frames_until(bystander, lambda f: len(f) == 1)[0]["event"]["eventId"] == (
            events[0].event_id
        )
        with connect(f"{gw.ws_url}/ws/s") as again:
            assert frames_until(again, lambda f: f and f[-1]["type"] == "ready")[-1] == {
                "type": "ready", "lastEventId": events[0].event_id,
            }


def test_ask_cancel_and_approve_go_through_the_command_path(database_url: str) -> None:
    with gateway_thread(database_url) as gw, connect(f"{gw.ws_url}/ws/chat") as ws:
        frames_until(ws, lambda f: len(f) == 1)
        ws.send(json.dumps({"type": "ask", "runId": "run-1", "message": "hello"}))
        accepted = frames_until(ws, lambda f: len(f) == 1)[0]["event"]
        assert accepted["type"] == "RunAccepted" and accepted["data"]["runId"] == "run-1"
        execution = accepted["executionId"]
        # The same runId again is the same run: nothing new is written.
        ws.send(json.dumps({"type": "ask", "runId": "run-1", "message": "hello"}))
        ws.send(
            json.dumps(
                {"type": "approve", "executionId": execution, "name": "ok", "payload": {"y": 1}}
            )
        )
        signal = frames_until(ws, lambda f: len(f) == 1)[0]["event"]
        assert signal["type"] == "SignalReceived"
        assert signal["data"] == {"name": "ok", "payload": {"y": 1}}
        ws.send(json.dumps({"type": "cancel", "executionId": execution}))
        cancel = frames_until(ws, lambda f: len(f) == 1)[0]["event"]
        assert cancel["type"] == "CancelRequested" and cancel["executionId"] == execution
        assert cancel["seq"] == 3


def test_the_frames_the_gateway_builds_are_the_frames_its_schema_publishes() -> None:
    """Outbound frames are built as text by hand (fast, shared by every socket); their models are
    what ``GET /ws-schema.json`` publishes and the TypeScript client's types are made of."""
    created = datetime(2026, 1, 31, 12, tzinfo=UTC)
    token = StoredEvent(7, 3, "default", "s", "ex_1", "Token",
                        {"text": "w0", "index": 0, "step": 1, "attempt": 2}, created)
    done = StoredEvent(8, 4, "default", "s", "ex_1", "Completed", {"answer": "w0"}, created,
                       trace="00-" + "a" * 32 + "-" + "b" * 16 + "-01")
    for text in (event_frame(token), event_frame(done), ready_frame(8), ping_frame(1.5),
                 error_frame("rate_limited", "slow down", 0.2), error_frame("unknown_type", "x")):
        # Every field known to the models (they forbid others), every value of its type.
        assert parse_outbound(text).type == json.loads(text)["type"], text
    schema = frames_json_schema()
    assert schema["anyOf"] == [{"$ref": "#/$defs/ServerFrame"}, {"$ref": "#/$defs/ClientFrame"}]
    server = {ref["$ref"].rsplit("/", 1)[1] for ref in schema["$defs"]["ServerFrame"]["oneOf"]}
    client = {ref["$ref"].rsplit("/", 1)[1] for ref in schema["$defs"]["ClientFrame"]["oneOf"]}
    assert server == {"EventFrame", "ReadyFrame", "PingFrame", "ErrorFrame"}
    assert client == {"AskFrame", "CancelFrame", "ApproveFrame", "PongFrame"}
    assert schema["$defs"]["EventFrame"]["properties"]["event"] == {"$ref": "#/$defs/Event"}
    events = {ref["$ref"].rsplit("/", 1)[1] for ref in schema["$defs"]["Event"]["oneOf"]}
    assert events == {f"{name}Event" for name in DATA_MODELS}
