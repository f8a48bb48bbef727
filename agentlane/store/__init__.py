"""The event store: ``agent_events``, the only source of truth, and everything read from it.

    recorder    EventStore: fenced, idempotent, batched appends; reads of streams and runs
    group_commit  concurrent appends sharing transactions, each answered after its commit
    tail        the gap-safe global log, follower checkpoints and the one loop that follows it
    ordering    per-session ``seq`` order over the tail, gaps read from the recorder
    audit       the audit's snapshot reads (synchronous, server-side cursors)
    fragments   conditions on the log that other owners splice into their statements

The package owns ``agent_events``, ``agent_stream_heads`` and ``projector_checkpoints``: no SQL
about them is written anywhere else.
"""

from agentlane.store.group_commit import Collective, GroupCommitter, TransactionHook
from agentlane.store.recorder import (
    EVENT_COLUMNS,
    WAKEUP_CHANNEL,
    AppendResult,
    EventStore,
    HeadRepairs,
    UnfinishedRun,
    event_hash_input,
    hash_body,
    lock_stream,
    row_to_event,
)
from agentlane.store.tail import (
    BatchHandler,
    Checkpoints,
    Follower,
    HorizonWatch,
    Position,
    RecentEnds,
    Resume,
    Tail,
    in_memory,
    recent_ends,
)

__all__ = [
    # appends and reads
    "EVENT_COLUMNS",
    "AppendResult",
    "EventStore",
    "HeadRepairs",
    "UnfinishedRun",
    "TransactionHook",
    "GroupCommitter",
    "Collective",
    "event_hash_input",
    "hash_body",
    "lock_stream",
    "row_to_event",
    # the global log
    "WAKEUP_CHANNEL",
    "BatchHandler",
    "Checkpoints",
    "Follower",
    "HorizonWatch",
    "Position",
    "RecentEnds",
    "Resume",
    "Tail",
    "in_memory",
    "recent_ends",
]
