"""The Python client's typed events (``agentlane_client._generated``): generated from the schema
the gateway publishes (its committed copy, clients/typescript/schema/ws-frames.json, is checked
against the server's code by test_typescript_client.py) and current with it; every recorded log
reads as typed events with nothing left over; a newer server's events do not break a reader."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import agentlane_client
import pytest
from agentlane_client import (
    EVENT_TYPES,
    CompletedEvent,
    Event,
    SuspendedEvent,
    TokenEvent,
    UsageEvent,
    parse_event,
)
from pydantic import BaseModel, ValidationError

ROOT = Path(__file__).parent.parent.parent
SCRIPT = ROOT / "clients" / "python" / "scripts" / "generate.py"
GENERATED = ROOT / "clients" / "python" / "src" / "agentlane_client" / "_generated.py"
SCHEMA = ROOT / "clients" / "typescript" / "schema" / "ws-frames.json"
FIXTURES = ROOT / "tests" / "fixtures" / "transcripts"

TOKEN = {
    "eventId": 7, "seq": 3, "tenantId": "t1", "sessionId": "s1", "executionId": "ex_1",
    "createdAt": "2026-12-01T03:05:43.577302+00:00", "traceparent": None, "type": "Token",
    "data": {"text": "w0 ", "index": 0, "step": 0, "attempt": 1},
}


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate_sdk_events", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_generated_events_are_the_schemas() -> None:
    """The committed module is what the generator makes of the committed schema now (else: `npm
    run generate` in clients/typescript, or clients/python/scripts/generate.py, and commit)."""
    recorded = re.search(r"^# sha256 ([0-9a-f]{64})\.$", GENERATED.read_text(), re.MULTILINE)
    assert recorded is not None, "_generated.py lost its header"
    assert recorded.group(1) == hashlib.sha256(SCHEMA.read_bytes()).hexdigest(), (
        "clients/python/src/agentlane_client/_generated.py was made from another schema: run "
        "clients/python/scripts/generate.py"
    )
    assert _generator().render() == GENERATED.read_text(), (
        "clients/python/src/agentlane_client/_generated.py is stale: run "
        "clients/python/scripts/generate.py"
    )


def test_every_event_type_of_the_schema_has_an_exported_model() -> None:
    mapping = json.loads(SCHEMA.read_text())["$defs"]["Event"]["discriminator"]["mapping"]
    assert set(mapping) == EVENT_TYPES
    for name in mapping:
        for model in (f"{name}Event", f"{name}Data"):
            assert model in agentlane_client.__all__, f"agentlane_client does not export {model}"
            assert issubclass(getattr(agentlane_client, model), BaseModel)


def _leftovers(model: BaseModel, path: str) -> list[str]:
    """The fields of ``model`` (and its nested models) that no model field took."""
    found = [f"{path}.{name}" for name in model.model_extra or {}]
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            found += _leftovers(value, f"{path}.{name}")
    return found


def test_every_recorded_log_reads_as_typed_events_with_nothing_left_over() -> None:
    paths = sorted(FIXTURES.glob("*.events.json"))
    assert len(paths) >= 9
    seen = set()
    for path in paths:
        for wire in json.loads(path.read_text()):
            typed = parse_event(wire)
            where = f"{path.name} #{wire['seq']} {wire['type']}"
            assert not isinstance(typed, Event), f"{where}: untyped"
            assert type(typed).__name__ == f"{wire['type']}Event", where
            assert _leftovers(typed, where) == []
            assert typed.event_id == wire["eventId"] and typed.execution_id == wire["executionId"]
            # Written back under the wire names, field for field, and read again the same.
            again = typed.model_dump(mode="json", by_alias=True, exclude_unset=True)
            assert set(again) == set(wire) and set(again["data"]) == set(wire["data"]), where
            assert parse_event(again) == typed, where
            # The envelope an iterator yields types itself the same way.
            envelope = Event.model_validate(wire)
            assert envelope.typed == typed and envelope.data == wire["data"]
            seen.add(wire["type"])
    assert {"Token", "ToolCall", "ToolResult", "Suspended", "Completed", "Usage"} <= seen


def test_a_newer_servers_events_do_not_break_a_reader() -> None:
    # A type this client has no model for stays the untyped Event, data a dict.
    unknown: dict[str, Any] = {**TOKEN, "type": "Forecast", "data": {"weather": "fine"}}
    event = Event.model_validate(unknown)
    assert event.typed is event and event.data == {"weather": "fine"}
    assert type(parse_event(json.dumps(unknown))) is Event
    # Fields it does not know are kept, in the envelope and in data.
    newer = {**TOKEN, "region": "eu", "data": {**TOKEN["data"], "logprob": -0.5}}
    typed = parse_event(json.dumps(newer).encode())
    assert isinstance(typed, TokenEvent) and typed.data.text == "w0 "
    assert typed.model_extra == {"region": "eu"} and typed.data.model_extra == {"logprob": -0.5}
    # The server's limits are not checked again (a newer server may relax one).
    relaxed = parse_event({**TOKEN, "tenantId": "x" * 500, "data": {"text": "", "index": -1}})
    assert isinstance(relaxed, TokenEvent) and relaxed.data.index == -1
    # Data a newer server shapes otherwise (a suspension reason this client does not know).
    later = {**TOKEN, "type": "Suspended", "data": {"reason": "quota"}}
    assert type(parse_event(later)) is Event
    assert isinstance(
        parse_event({**later, "data": {"reason": "approval", "name": "approve:c1"}}),
        SuspendedEvent,
    )
    # Not an Event at all: the same error as before typed events.
    with pytest.raises(ValidationError):
        parse_event({"type": "Token", "data": {}})


def test_typed_events_read_by_attribute_and_write_the_wire_names() -> None:
    usage = parse_event({
        **TOKEN, "type": "Usage",
        "data": {"model": "m", "inputTokens": 3, "outputTokens": 2, "costMicros": 41},
    })
    assert isinstance(usage, UsageEvent)
    assert (usage.data.input_tokens, usage.data.cost_micros, usage.data.cached_input_tokens) == (
        3, 41, 0
    )
    assert usage.data.model_dump(by_alias=True, exclude_unset=True) == {
        "model": "m", "inputTokens": 3, "outputTokens": 2, "costMicros": 41,
    }
    completed = parse_event({**TOKEN, "type": "Completed", "data": {"answer": "done"}})
    assert isinstance(completed, CompletedEvent) and completed.data.answer == "done"
    assert completed.data.offline is False
    with pytest.raises(ValidationError):
        completed.data.answer = "changed"  # type: ignore[misc]
