"""Live dispatch: one bus subscription per process, fanned out to the local sockets of a session.

Streams are per ``(tenant, session)``, so a socket only ever sees its own tenant's events. The
hub never blocks on a socket: it offers each event to every subscriber's bounded buffer and a
subscriber that overflows closes itself (4008).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from agentlane import telemetry
from agentlane.records import StoredEvent
from gateway.protocol import event_frame


@dataclass(frozen=True, slots=True)
class LiveEvent:
    """An event from the bus with its frame serialised once for every socket it reaches."""

    tenant_id: str
    session_id: str
    event_id: int
    seq: int
    frame: str
    #: The traceparent of the span that appended it (None when tracing was off).
    trace: str | None = None

    @classmethod
    def of(cls, event: StoredEvent) -> LiveEvent:
        return cls(
            event.tenant_id, event.session_id, event.event_id, event.seq, event_frame(event),
            event.trace,
        )


class Subscriber(Protocol):
    def offer(self, event: LiveEvent) -> None:
        """Take one live event without blocking (buffer it, or give up as a slow consumer)."""
        ...

    def resync(self) -> None:
        """Live events may have been lost upstream: re-read the store once."""
        ...


StreamKey = tuple[str, str]


class Hub:
    """Which local sockets follow which stream."""

    def __init__(self) -> None:
        self._streams: dict[StreamKey, set[Subscriber]] = {}

    def subscribe(self, tenant_id: str, session_id: str, subscriber: Subscriber) -> None:
        self._streams.setdefault((tenant_id, session_id), set()).add(subscriber)

    def unsubscribe(self, tenant_id: str, session_id: str, subscriber: Subscriber) -> None:
        key = (tenant_id, session_id)
        subscribers = self._streams.get(key)
        if subscribers is None:
            return
        subscribers.discard(subscriber)
        if not subscribers:
            del self._streams[key]

    def wants(self, tenant_id: str, session_id: str) -> bool:
        """True when a local socket follows this stream (sources skip the rest cheaply)."""
        return (tenant_id, session_id) in self._streams

    def publish(self, event: LiveEvent) -> int:
        """Offer ``event`` to its stream's sockets; returns how many there were."""
        return self.publish_stream([event])

    def publish_stream(self, events: list[LiveEvent]) -> int:
        """Offer consecutive events of one stream to its sockets, all of them to one socket
        before the next: a client behind a burst takes its frames in one read, not one wake-up
        per frame. Returns how many sockets there were."""
        first = events[0]
        subscribers = self._streams.get((first.tenant_id, first.session_id))
        if not subscribers:
            return 0
        started = telemetry.now_ns()
        for subscriber in tuple(subscribers):
            for event in events:
                subscriber.offer(event)
        # Frames to sockets with room are written by now; the others are buffered.
        telemetry.record_spans(
            "agentlane.gateway", "send frames", (event.trace for event in events), started,
            attributes={"agentlane.sockets": len(subscribers)},
        )
        return len(subscribers)

    def resync(self) -> None:
        """Every local socket re-reads the store (after the live source was replaced)."""
        for subscribers in tuple(self._streams.values()):
            for subscriber in tuple(subscribers):
                subscriber.resync()

    @property
    def socket_count(self) -> int:
        return sum(len(s) for s in self._streams.values())
