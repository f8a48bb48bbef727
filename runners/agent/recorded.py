"""The agent's reads of a session, answered from its recorded events instead of the store.

What a :class:`~runners.engine.Replayer` gives the agent: the session's earlier exchanges and a
clock, both from the history itself, so a recorded run replays with no database at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from agentlane.records import StoredEvent


class RecordedSession:
    """A session's events (``seq`` order) as the agent's :class:`~runners.agent.AgentStore`."""

    def __init__(self, events: Sequence[StoredEvent]) -> None:
        if not events:
            raise ValueError("a recorded session has at least one event")
        self._events = list(events)

    async def completed_exchanges(
        self, tenant_id: str, session_id: str, *, before_seq: int, limit: int
    ) -> list[tuple[str, str]]:
        """What :meth:`agentlane.store.EventStore.completed_exchanges` answers, from the
        recording: runs accepted before ``before_seq`` that completed, oldest first."""
        answers = {
            event.execution_id: str(event.data.get("answer"))
            for event in self._events
            if event.type == "Completed"
        }
        exchanges = [
            (str(event.data.get("message")), answers[event.execution_id])
            for event in self._events
            if event.type == "RunAccepted"
            and event.tenant_id == tenant_id
            and event.session_id == session_id
            and event.seq < before_seq
            and event.execution_id in answers
        ]
        return exchanges[-limit:] if limit > 0 else []

    async def now(self) -> datetime:
        """The recording's last moment (a replay never calls a tool, so it is never read live)."""
        return self._events[-1].created_at
