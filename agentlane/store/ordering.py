"""Per-session ``seq`` order over the gap-safe tail.

The tail returns events in ``(tx_id, event_id)`` order, which can differ from ``seq`` order inside a
session: a writer that took its transaction id early may append ``seq`` 6 after another transaction
committed ``seq`` 5, and the tail hands out 6 first. Consumers that need session order (read models,
ordered publishes, live delivery) put each session back in ``seq`` order here. A delivered ``seq``
proves every lower ``seq`` of its stream has committed (``seq`` is taken under the stream's row
lock), so a missing one is read from the store at once rather than waited for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from agentlane.records import StoredEvent
from agentlane.store.recorder import EventStore

SessionKey = tuple[str, str]


def session_key(event: StoredEvent) -> SessionKey:
    return (event.tenant_id, event.session_id)


async def in_seq_order(
    store: EventStore,
    events: Sequence[StoredEvent],
    heads: Mapping[SessionKey, int],
) -> dict[SessionKey, list[StoredEvent]]:
    """Per session, the events after its head (last handled ``seq``; 0 when missing from
    ``heads``) in ``seq`` order, no gaps. Events at or below the head are dropped (already
    handled).

    A reader that joined mid-log must not guess a session's head from the events in hand (the
    first one delivered may not be the lowest still to come): it asks
    :meth:`EventStore.heads_at` for the head as of its position.
    """
    grouped: dict[SessionKey, dict[int, StoredEvent]] = {}
    for event in events:
        grouped.setdefault(session_key(event), {})[event.seq] = event
    ordered: dict[SessionKey, list[StoredEvent]] = {}
    for key, by_seq in grouped.items():
        head = heads.get(key, 0)
        last = max(by_seq)
        if last <= head:
            continue
        wanted = range(head + 1, last + 1)
        if all(seq in by_seq for seq in wanted):
            ordered[key] = [by_seq[seq] for seq in wanted]
        else:
            ordered[key] = await store.read_session(
                key[0], key[1], gt_seq=head, lte_seq=last, limit=None
            )
    return ordered
