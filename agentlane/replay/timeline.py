"""``replay session`` and ``replay run``: what happened, event by event, and the state it left.

A timeline is a stream of :class:`Step` (an event and the states folded after it, with the same
pure folds the read models use). Machines get NDJSON (``--json``); people get a rich table, where
consecutive ``Token`` events of a run share one row so an answer reads as text.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from agentlane.events import format_timestamp
from agentlane.folds import RunState, SessionState, apply_run, apply_session
from agentlane.records import StoredEvent

_DETAIL_WIDTH = 120
_STATUS_STYLE = {
    "queued": "yellow",
    "running": "cyan",
    "suspended": "magenta",
    "completed": "green",
    "failed": "red",
    "cancelled": "bright_black",
}


@dataclass(frozen=True, slots=True)
class Step:
    """One event and the state after it: its run's (if it belongs to one) and its session's."""

    event: StoredEvent
    run: RunState | None
    session: SessionState

    def to_json(self) -> dict[str, Any]:
        return {
            "event": self.event.to_json(),
            "run": self.run.to_json() if self.run is not None else None,
            "session": self.session.to_json(),
        }


def steps(events: Iterable[StoredEvent]) -> Iterator[Step]:
    """Fold a session's events (in ``seq`` order), yielding the state after each."""
    runs: dict[str, RunState | None] = {}
    session: SessionState | None = None
    for event in events:
        session = apply_session(session, event)
        run = None
        if event.execution_id is not None:
            run = apply_run(runs.get(event.execution_id), event)
            runs[event.execution_id] = run
        yield Step(event, run, session)


def write_ndjson(items: Iterable[Step], out: IO[str]) -> int:
    count = 0
    for step in items:
        out.write(json.dumps(step.to_json(), ensure_ascii=False, separators=(",", ":")) + "\n")
        count += 1
    return count


def detail(event: StoredEvent) -> str:
    """A short, readable summary of an event's data."""
    data = event.data
    match event.type:
        case "RunAccepted":
            text = f"run {data.get('runId')}: {_shown(data, 'message')}"
        case "RunStarted":
            text = f"{data.get('workflow')} v{data.get('version')}"
            if data.get("runnerId"):
                text += f" on {data['runnerId']}"
        case "Token":
            text = repr(data.get("text", ""))
        case "ToolCall":
            arguments = json.dumps(data.get("arguments", {}), ensure_ascii=False)
            text = f"step {data.get('step')}: {data.get('name')}({arguments})"
        case "ToolResult":
            outcome = "ok" if data.get("ok") else f"error {data.get('error')!r}"
            result = _shown(data, "result")
            text = f"step {data.get('step')}: {data.get('name')} {outcome} {result}"
        case "StepCompleted":
            attempts = data.get("attempts", 1)
            text = f"step {data.get('step')}: {data.get('name')} (attempts {attempts})"
        case "Usage":
            text = (
                f"{data.get('model')}: in {data.get('inputTokens')}, out "
                f"{data.get('outputTokens')}, cached {data.get('cachedInputTokens', 0)}"
            )
        case "Completed":
            text = _shown(data, "answer")
        case "Failed":
            text = str(data.get("reason", ""))
        case _:
            text = json.dumps(data, ensure_ascii=False, separators=(",", ":")) if data else ""
    return text if len(text) <= _DETAIL_WIDTH else text[: _DETAIL_WIDTH - 1] + "…"


def _shown(data: dict[str, Any], field: str) -> str:
    """A field's value as the table shows it; a value kept in the blob store by its reference."""
    ref = data.get(field + "Ref")
    if isinstance(ref, dict):
        return f"<blob {str(ref.get('sha256'))[:12]}…, {ref.get('size')} bytes>"
    value = data.get(field)
    return repr(value) if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _state(run: RunState | None) -> Text:
    if run is None:
        return Text("")
    text = Text(run.status, style=_STATUS_STYLE.get(run.status, ""))
    tokens = run.usage.input_tokens + run.usage.output_tokens
    if tokens:
        text.append(f" · {tokens} tok", style="dim")
    return text


def _short(execution_id: str | None) -> str:
    if execution_id is None:
        return ""
    return execution_id if len(execution_id) <= 14 else execution_id[:13] + "…"


def _rows(items: Iterable[Step]) -> Iterator[tuple[str, str, str, str, str, str, Text]]:
    """Table rows; a run of consecutive Tokens of one execution becomes one row."""
    tokens: list[Step] = []

    def token_row() -> tuple[str, str, str, str, str, str, Text]:
        first, last = tokens[0], tokens[-1]
        text = "".join(str(step.event.data.get("text", "")) for step in tokens)
        seqs = f"{first.event.seq}" if len(tokens) == 1 else f"{first.event.seq}-{last.event.seq}"
        label = "Token" if len(tokens) == 1 else f"{len(tokens)} Tokens"
        summary = repr(text)
        if len(summary) > _DETAIL_WIDTH:
            summary = summary[: _DETAIL_WIDTH - 1] + "…"
        return (
            seqs, str(last.event.event_id), format_timestamp(last.event.created_at)[11:23],
            label, _short(last.event.execution_id), summary, _state(last.run),
        )

    for step in items:
        event = step.event
        if tokens and (event.type != "Token" or event.execution_id != tokens[0].event.execution_id):
            yield token_row()
            tokens = []
        if event.type == "Token":
            tokens.append(step)
            continue
        yield (
            str(event.seq), str(event.event_id), format_timestamp(event.created_at)[11:23],
            event.type, _short(event.execution_id), detail(event), _state(step.run),
        )
    if tokens:
        yield token_row()


def render_table(title: str, items: Iterable[Step], console: Console) -> Step | None:
    """Print the timeline as a table; returns the last step (for a closing summary)."""
    table = Table(title=title, title_justify="left", expand=False, show_lines=False)
    table.add_column("seq", justify="right", style="dim", no_wrap=True)
    table.add_column("event", justify="right", style="dim", no_wrap=True)
    table.add_column("time (UTC)", no_wrap=True)
    table.add_column("type", style="bold", no_wrap=True)
    table.add_column("run", no_wrap=True)
    table.add_column("detail", overflow="fold")
    table.add_column("run state after", no_wrap=True)
    last: Step | None = None

    def remember(source: Iterable[Step]) -> Iterator[Step]:
        nonlocal last
        for step in source:
            last = step
            yield step

    for row in _rows(remember(items)):
        table.add_row(*row)
    console.print(table)
    return last


def render_state(title: str, state: dict[str, Any], console: Console) -> None:
    """A folded state as a two-column table."""
    table = Table(title=title, title_justify="left", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in state.items():
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        table.add_row(key, shown)
    console.print(table)


def render_comparison(
    title: str, left: dict[str, Any], right: dict[str, Any], console: Console,
    *, names: tuple[str, str] = ("recorded", "what-if"),
) -> None:
    """Two folded states side by side, field by field; the fields that differ are marked."""
    table = Table(title=title, title_justify="left")
    table.add_column("field", style="bold")
    table.add_column(names[0], overflow="fold")
    table.add_column(names[1], overflow="fold")
    table.add_column("")
    for key in dict.fromkeys([*left, *right]):
        shown = [
            value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            for value in (left.get(key), right.get(key))
        ]
        table.add_row(key, *shown, "≠" if shown[0] != shown[1] else "")
    console.print(table)
