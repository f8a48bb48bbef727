"""docs/contract.md's Event JSON: round-trips, and bad payloads are refused naming the field."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentlane.db import Database, dump_json, load_json
from agentlane.errors import InvalidEvent
from agentlane.events import DATA_MODELS, parse_event, validate_data
from agentlane.hashchain import canonical_json
from agentlane.records import NewEvent, StoredEvent
from agentlane.store import EventStore
from tests.strategies import json_values

text = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=20)
moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)

data_by_type: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "Token": st.fixed_dictionaries({"text": text, "index": st.integers(0, 10**6)}),
    "Completed": st.fixed_dictionaries({"answer": text}, optional={"offline": st.booleans()}),
    "Failed": st.fixed_dictionaries({"reason": text}),
    "Usage": st.fixed_dictionaries(
        {
            "model": text,
            "inputTokens": st.integers(0, 10**9),
            "outputTokens": st.integers(0, 10**9),
            "cachedInputTokens": st.integers(0, 10**9),
        }
    ),
    "ToolResult": st.fixed_dictionaries(
        {
            "step": st.integers(0, 1000),
            "callId": text,
            "name": text,
            "ok": st.booleans(),
            "result": json_values,
        }
    ),
    "SignalReceived": st.fixed_dictionaries(
        {"name": st.text("abc:_", min_size=1, max_size=10), "payload": json_values}
    ),
}

events = st.sampled_from(sorted(data_by_type)).flatmap(
    lambda kind: st.builds(
        StoredEvent,
        event_id=st.integers(1, 2**62),
        seq=st.integers(1, 2**40),
        tenant_id=st.text("abcdef0123", min_size=1, max_size=8),
        session_id=st.text("abcdef0123-", min_size=1, max_size=8),
        execution_id=st.none() | st.text("ex_0123", min_size=1, max_size=8),
        type=st.just(kind),
        data=data_by_type[kind].map(lambda d, k=kind: validate_data(k, d)),
        created_at=moments,
    )
)


@given(events)
def test_event_json_round_trips(event: StoredEvent) -> None:
    wire = json.dumps(event.to_json())
    parsed = parse_event(wire)
    assert parsed.model_dump(mode="json", by_alias=True)["data"] == json.loads(wire)["data"]
    assert parsed.event_id == event.event_id and parsed.seq == event.seq
    assert parsed.created_at == event.created_at
    assert type(parsed).__name__ == f"{event.type}Event"


@pytest.mark.parametrize(
    ("event_type", "data", "field"),
    [
        ("Token", {"index": 1}, "data.text"),
        ("Token", {"text": "a", "index": -1}, "data.index"),
        ("Usage", {"model": "m", "inputTokens": "many", "outputTokens": 1}, "data.inputTokens"),
        ("RunAccepted", {"runId": "bad id!", "message": "m"}, "data.runId"),
        ("Suspended", {"reason": "bored"}, "data.reason"),
        ("Completed", {"answer": "a", "surprise": 1}, "data.surprise"),
        # No UTF-8 encoder, PostgreSQL's included, can write a lone surrogate.
        ("Token", {"text": "a\ud800", "index": 0}, "data.text"),
        ("SignalReceived", {"name": "n", "payload": {"k": ["\udfff"]}}, "data.payload.k.0"),
        # JSON has no NaN or Infinity: refused, never stored as null.
        ("ToolResult", {"step": 0, "callId": "c", "name": "n", "ok": True,
                        "result": {"score": [float("nan")]}}, "data.result.dict.score.list.0"),
        ("SignalReceived", {"name": "n", "payload": float("inf")}, "data.payload"),
    ],
)
def test_bad_payloads_name_the_field(event_type: str, data: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidEvent, match=field.replace(".", r"\.")):
        validate_data(event_type, data)


@given(st.sampled_from(sorted(DATA_MODELS)), st.dictionaries(text, json_values, max_size=3))
def test_arbitrary_data_is_valid_or_refused_never_crashes(
    event_type: str, data: dict[str, Any]
) -> None:
    try:
        wire = validate_data(event_type, data)
    except InvalidEvent as exc:
        assert str(exc).startswith("data")
    else:
        assert validate_data(event_type, wire) == wire


def test_parse_refuses_bad_envelope() -> None:
    with pytest.raises(InvalidEvent, match="eventId"):
        parse_event(
            {
                "seq": 1,
                "tenantId": "t",
                "sessionId": "s",
                "executionId": None,
                "type": "Completed",
                "data": {"answer": "a"},
                "createdAt": "2026-01-01T00:00:00Z",
            }
        )
    with pytest.raises(InvalidEvent):
        parse_event(b"{not json")


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(json_values)
async def test_any_json_survives_storage_with_an_intact_chain(
    store: EventStore, result: Any
) -> None:
    """jsonb normalises numbers; the chain's canonical form must not care."""
    stored = await store.append(
        NewEvent(
            "t1",
            "hyp",
            "ToolResult",
            {"step": 0, "callId": "c", "name": "n", "ok": True, "result": result},
        )
    )
    read = (await store.read_session("t1", "hyp", gt=stored.event.event_id - 1))[0]
    assert canonical_json(read.data["result"]) == canonical_json(stored.event.data["result"])
    assert await store.check_chain("t1", "hyp") == []


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(json_values)
async def test_payload_text_is_the_same_jsonb_as_json_dumps(db: Database, value: Any) -> None:
    """Payloads are written as orjson's text, which may spell numbers otherwise than json.dumps
    (``1e16`` / ``1e+16``): Postgres must store the same jsonb from both, down to how it spells
    it back (a numeric's scale shows: ``1.0`` and ``1`` are equal but read back differently)."""
    async with db.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT %s::jsonb::text, %s::jsonb::text", (dump_json(value), json.dumps(value))
            )
        ).fetchone()
    assert row is not None and row[0] == row[1]


_numbers_and_text = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(_numbers_and_text)
def test_the_jsonb_loader_reads_what_json_loads_reads(value: Any) -> None:
    """Every event read decodes with ``load_json`` (orjson where safe): the values, and their
    types (an integer beyond 64 bits stays an integer), are ``json.loads``'s."""
    text = json.dumps(value)
    assert canonical_json(load_json(text)) == canonical_json(json.loads(text))
    assert canonical_json(load_json(text.encode())) == canonical_json(json.loads(text))


@pytest.mark.parametrize(
    "text",
    [
        "15031635710519662723727360",  # beyond 64 bits: orjson alone would give a float
        "-18446744073709551617",
        "[18446744073709551615, 9223372036854775808]",
        '{"id": "1234567890123456789012"}',
        "0.00000000000000000000012968429076834746",  # how jsonb spells a small float
        '"\\ud800"',  # an escaped lone surrogate: orjson refuses it
    ],
)
def test_the_jsonb_loader_agrees_where_orjson_alone_would_not(text: str) -> None:
    assert repr(load_json(text)) == repr(json.loads(text))
