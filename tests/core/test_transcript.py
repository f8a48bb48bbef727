"""The transcript fold: a step shows the tokens of its latest attempt that has not failed, a run
its steps in order; what the fold reports as changes renders to the same text.

Checked against a model of the rule over generated logs (attempts, crashes with and without the
``abandoned`` StepFailed, failures, repeats, steps interleaved with tool calls), and against the
recorded logs of real runs in ``tests/fixtures/transcripts`` with their hand-written expectations.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentlane import transcript as transcript_module
from agentlane.events import TERMINAL_STATUS
from agentlane.transcript import Reset, TextDelta, Transcript, transcript_of

FIXTURES = Path(__file__).parent.parent / "fixtures" / "transcripts"


def _token(step: int, attempt: int, index: int, text: str) -> dict[str, Any]:
    return {"type": "Token", "data": {"text": text, "index": index, "step": step,
                                      "attempt": attempt}}


def _failed(step: int, attempt: int, *, abandoned: bool = False) -> dict[str, Any]:
    return {"type": "StepFailed", "data": {"step": step, "name": "model", "attempt": attempt,
                                           "error": "x", "retryable": True,
                                           "abandoned": abandoned}}


@st.composite
def _logs(draw: st.DrawFn) -> list[dict[str, Any]]:
    """A run's log as the engine writes it: steps in order; each step's attempts in order, each
    streaming some tokens, every attempt but the last ended by a StepFailed (abandoned or not,
    or, for a crash in an older log, none at all); tokens may repeat (at-least-once)."""
    events: list[dict[str, Any]] = []
    for step in range(draw(st.integers(1, 3))):
        attempts = draw(st.integers(1, 4))
        for attempt in range(1, attempts + 1):
            words = draw(st.lists(st.sampled_from(["a", "b", "c", " "]), max_size=4))
            for index, word in enumerate(words):
                events.append(_token(step, attempt, index, f"{step}.{attempt}:{word}"))
                if draw(st.booleans()) and draw(st.booleans()):
                    events.append(_token(step, attempt, index, f"{step}.{attempt}:{word}"))
            if attempt < attempts:
                ending = draw(st.sampled_from(["failed", "abandoned", "crash-no-event"]))
                if ending != "crash-no-event":
                    events.append(_failed(step, attempt, abandoned=ending == "abandoned"))
            elif draw(st.booleans()):
                events.append(_failed(step, attempt))  # the last attempt failed too
        events.append({"type": "ToolCall", "data": {"step": step, "callId": f"c{step}",
                                                    "name": "t", "arguments": {}}})
    return events


def _model(events: list[dict[str, Any]]) -> str:
    """The rule, literally: per step, the latest attempt with tokens and no StepFailed; its
    tokens by index, once each."""
    tokens: dict[int, dict[int, dict[int, str]]] = {}
    failed: set[tuple[int, int]] = set()
    for event in events:
        data = event["data"]
        if event["type"] == "Token":
            tokens.setdefault(data["step"], {}).setdefault(data["attempt"], {}).setdefault(
                data["index"], data["text"]
            )
        elif event["type"] == "StepFailed":
            failed.add((data["step"], data["attempt"]))
    text = []
    for step in sorted(tokens):
        latest = max(tokens[step])
        if (step, latest) not in failed:
            text.extend(tokens[step][latest][i] for i in sorted(tokens[step][latest]))
    return "".join(text)


@given(_logs())
def test_the_fold_is_the_rule(events: list[dict[str, Any]]) -> None:
    assert transcript_of(events).text == _model(events)


@given(_logs())
def test_rendering_the_changes_gives_the_transcript(events: list[dict[str, Any]]) -> None:
    # What a client does with the changes: append deltas to the step's text, clear it on reset.
    shown: dict[int, str] = {}
    transcript = Transcript()
    for event in events:
        for change in transcript.apply(event):
            if isinstance(change, TextDelta):
                shown[change.step] = shown.get(change.step, "") + change.text
            elif isinstance(change, Reset):
                shown[change.step] = ""
    assert "".join(shown[s] for s in sorted(shown)) == transcript.text


def test_an_abandoned_attempt_is_dropped_at_once() -> None:
    transcript = Transcript()
    transcript.apply(_token(0, 1, 0, "w0 w1"))
    assert transcript.apply(_failed(0, 1, abandoned=True)) == [Reset(0)]
    assert transcript.text == ""
    transcript.apply(_token(0, 2, 0, "whole"))
    assert transcript.text == "whole"


def _fixture_names() -> list[str]:
    return sorted(p.name.removesuffix(".events.json") for p in FIXTURES.glob("*.events.json"))


def test_every_recorded_log_has_an_expectation() -> None:
    expected = json.loads((FIXTURES / "expected.json").read_text())
    assert set(_fixture_names()) == set(expected) and len(expected) >= 6


@pytest.mark.parametrize("name", _fixture_names())
def test_the_recorded_logs_give_their_expected_transcripts(name: str) -> None:
    events = json.loads((FIXTURES / f"{name}.events.json").read_text())
    expected = json.loads((FIXTURES / "expected.json").read_text())[name]
    transcript = transcript_of(events).to_json()
    for key, value in expected.items():
        assert transcript[key] == value, (name, key)


def test_the_folds_copy_of_the_terminal_types_is_the_contracts() -> None:
    # transcript.py spells them out (the client ships it without the server's modules).
    assert transcript_module._ENDS == dict(TERMINAL_STATUS)
