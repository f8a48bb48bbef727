"""Verify's fast paths give the definitions' results on any input: the stream folds
(:class:`RunFold`, :class:`SessionFold`) equal ``apply_run`` / ``apply_session`` after every event,
and the orjson digest's verdict (and the event the folds then see) equals
``chain_hash(prev, event_hash_input(event))`` over the payload as ``json.loads`` reads it."""

from __future__ import annotations

import json
from dataclasses import fields
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from agentlane.events import format_timestamp
from agentlane.folds import (
    RunFold,
    RunState,
    SessionFold,
    SessionState,
    apply_run,
    apply_session,
    fold_run,
    fold_session,
)
from agentlane.hashchain import canonical_json, chain_hash
from agentlane.records import StoredEvent
from agentlane.replay.digest import Digester, fast_digest, fast_payload, load_payload, rfc3339
from agentlane.replay.rows import EventRow
from agentlane.store import event_hash_input
from tests.strategies import json_text as _text
from tests.strategies import json_values as _json

_TYPES = [
    "RunAccepted", "RunStarted", "Resumed", "Suspended", "SignalReceived", "CancelRequested",
    "Usage", "Completed", "Failed", "Cancelled", "Token", "ToolCall", "ToolResult",
    "StepCompleted", "TimerFired",
]
_moments = st.datetimes(
    min_value=datetime(2, 1, 1),
    max_value=datetime(9998, 12, 31),
    timezones=st.sampled_from(
        [UTC, timezone(timedelta(hours=5)), timezone(-timedelta(hours=3, minutes=30))]
    ),
)
_fold_data = st.fixed_dictionaries(
    {},
    optional={
        "runId": st.text(max_size=4),
        "message": st.text(max_size=4),
        "answer": st.text(max_size=4) | st.none(),
        "reason": st.text(max_size=4) | st.none() | st.integers(),
        "inputTokens": st.integers(0, 1000),
        "outputTokens": st.integers(0, 1000),
        "cachedInputTokens": st.integers(0, 1000),
        "costMicros": st.integers(0, 10**9) | st.none(),
        # A message or an answer kept in the blob store.
        "messageRef": st.fixed_dictionaries({"sha256": st.just("a" * 64), "size": st.integers(0)}),
        "answerRef": st.fixed_dictionaries({"sha256": st.just("b" * 64), "size": st.integers(0)}),
    },
)


@st.composite
def _streams(draw: st.DrawFn) -> list[StoredEvent]:
    kinds = draw(st.lists(st.sampled_from(_TYPES), max_size=30))
    start = draw(_moments)
    return [
        StoredEvent(
            event_id=10 + 3 * index,
            seq=index + 1,
            tenant_id="t",
            session_id="s",
            execution_id=draw(st.sampled_from(["ex1", "ex2", None])),
            type=kind,
            data=draw(_fold_data),
            created_at=start + timedelta(milliseconds=index),
        )
        for index, kind in enumerate(kinds)
    ]


@settings(max_examples=300, deadline=None)
@given(events=_streams())
def test_run_fold_is_apply_run_after_every_event(events: list[StoredEvent]) -> None:
    expected: RunState | None = None
    fold, rows = RunFold(), RunFold()
    for event in events:
        expected = apply_run(expected, event)
        fold.feed(event)
        rows.feed(EventRow(*(getattr(event, f.name) for f in fields(event))))
        assert fold.state() == expected
        assert rows.state() == expected
    assert fold_run(events) == expected


@settings(max_examples=200, deadline=None)
@given(events=_streams())
def test_session_fold_is_apply_session_after_every_event(events: list[StoredEvent]) -> None:
    expected: SessionState | None = None
    fold = SessionFold()
    for event in events:
        expected = apply_session(expected, event)
        fold.feed(event)
        assert fold.state() == expected
    assert fold_session(events) == expected


@settings(max_examples=300, deadline=None)
@given(moment=_moments)
def test_rfc3339_is_format_timestamp(moment: datetime) -> None:
    assert rfc3339(moment) == format_timestamp(moment)


def _rows(data: Any, text: str, moment: datetime) -> tuple[EventRow, StoredEvent]:
    fast = EventRow(42, 3, "tenant", "sess", "ex", "ToolResult", fast_payload(text), moment)
    defined = StoredEvent(42, 3, "tenant", "sess", "ex", "ToolResult", load_payload(text), moment)
    return fast, defined


_spellings = st.sampled_from([
    lambda v: json.dumps(v),
    lambda v: json.dumps(v, ensure_ascii=False, separators=(", ", ": ")),
])


@settings(max_examples=300, deadline=None)
@given(data=_json, spell=_spellings, prev=st.binary(min_size=32, max_size=32), moment=_moments)
def test_verify_gives_the_definitions_verdict_and_event(
    data: Any, spell: Any, prev: bytes, moment: datetime
) -> None:
    text = spell(data)
    fast, defined = _rows(data, text, moment)
    stored = chain_hash(prev, event_hash_input(defined))
    digester = Digester()
    for _ in range(3):  # the first row is self-checked against the definition, the later ones not
        intact, event = digester.verify(prev, fast, stored, text)
        assert intact
        assert canonical_json(event.data) == canonical_json(defined.data)
        assert event.stored() == defined
    edited = chain_hash(prev, {**event_hash_input(defined), "data": [data]})
    intact, event = digester.verify(prev, fast, edited, text)
    assert not intact
    assert canonical_json(event.data) == canonical_json(defined.data)
    # Numbers orjson spells its own way, and edited rows, cost that row the definition's hash,
    # never the fast path for the rows after it.
    assert digester.fast


_plain_json: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | _text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(data=_plain_json, prev=st.binary(min_size=32, max_size=32), moment=_moments)
def test_fast_digest_bytes_are_the_definitions_without_floats(
    data: Any, prev: bytes, moment: datetime
) -> None:
    """What agents journal (strings, 64-bit integers, bools, nulls) needs no fallback."""
    event = StoredEvent(7, 1, "t", "s", None, "Token", data, moment)
    assert fast_digest(prev, event, rfc3339(moment)) == chain_hash(prev, event_hash_input(event))


@settings(max_examples=300, deadline=None)
@given(events=_streams(), split=st.integers(0, 30))
def test_a_fold_resumed_from_a_state_is_the_fold_of_everything(
    events: list[StoredEvent], split: int
) -> None:
    """The projector folds a batch onto the states its rows hold (``resume``), not from the
    first event: the same states as ``apply_run``/``apply_session`` over the whole stream."""
    before, after = events[:split], events[split:]
    run_state: RunState | None = None
    session_state: SessionState | None = None
    for event in before:
        run_state = apply_run(run_state, event)
        session_state = apply_session(session_state, event)
    run, session = RunFold.resume(run_state), SessionFold.resume(session_state)
    for event in after:
        run.feed(event)
        session.feed(event)
    expected_run: RunState | None = None
    expected_session: SessionState | None = None
    for event in events:
        expected_run = apply_run(expected_run, event)
        expected_session = apply_session(expected_session, event)
    assert run.state() == expected_run
    assert session.state() == expected_session
