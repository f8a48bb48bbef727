"""agentlane's Python client.

    from agentlane_client import Client, AsyncClient

    with Client("http://127.0.0.1:8080", token=None) as client:
        for change in client.runs.stream("session-1", "hello"):
            ...  # TextDelta, Reset, ToolCalled, ToolReturned, Waiting, Ended

``runs``: ``create``, ``get``, ``cancel``, ``signal``, ``approve``, ``stream`` (start a run and
yield what a reader shows of it, folded by the rule of the contract, so a crash-and-retry comes
as a ``Reset`` of the step's text), ``follow``. ``sessions``: ``events`` (typed events, history
then live, reconnecting and resuming by ``lastEventId``), ``page``, ``connect`` (the session's
socket with its ``ask``/``cancel``/``approve`` commands; async client only), ``usage`` (the
session's tokens and cost). ``operations``: ``overview`` (operators only). Errors: see
:mod:`agentlane_client._errors`.

Events: each :class:`Event` (the envelope; ``data`` a dict) has ``typed``, the model of its type
(``RunAcceptedEvent``, ``TokenEvent``, ``CompletedEvent``, …, each with its ``<Type>Data``),
generated from the schema the gateway publishes (clients/python/scripts/generate.py);
:func:`parse_event` does the same for an Event JSON. A type this client does not know (a newer
server's) stays an untyped :class:`Event`.
"""

from agentlane_client._async import AsyncClient
from agentlane_client._errors import (
    AgentlaneClientError,
    APIConnectionError,
    APIError,
    BadRequest,
    BlobMismatch,
    Conflict,
    ConnectionLost,
    Forbidden,
    GatewayError,
    NotFound,
    RateLimited,
    ServiceUnavailable,
    Unauthorized,
)
from agentlane_client._generated import (
    Budget,
    CancelledData,
    CancelledEvent,
    CancelRequestedData,
    CancelRequestedEvent,
    CompletedData,
    CompletedEvent,
    FailedData,
    FailedEvent,
    ResumedData,
    ResumedEvent,
    RunAcceptedData,
    RunAcceptedEvent,
    RunStartedData,
    RunStartedEvent,
    SessionForkedData,
    SessionForkedEvent,
    SignalReceivedData,
    SignalReceivedEvent,
    StepCompletedData,
    StepCompletedEvent,
    StepFailedData,
    StepFailedEvent,
    SuspendedData,
    SuspendedEvent,
    TimerFiredData,
    TimerFiredEvent,
    TimerScheduledData,
    TimerScheduledEvent,
    TokenData,
    TokenEvent,
    ToolCallData,
    ToolCallEvent,
    ToolResultData,
    ToolResultEvent,
    UsageData,
    UsageEvent,
    VersionMovedData,
    VersionMovedEvent,
)
from agentlane_client._models import (
    EVENT_TYPES,
    Event,
    Fork,
    Run,
    RunAccepted,
    SessionUsage,
    TypedEvent,
    Usage,
    parse_event,
)
from agentlane_client._socket import SessionSocket
from agentlane_client._sync import Client
from agentlane_client.transcript import (
    Change,
    Ended,
    Reset,
    TextDelta,
    ToolCalled,
    ToolReturned,
    Transcript,
    Waiting,
)

__all__ = [
    "APIConnectionError",
    "APIError",
    "AgentlaneClientError",
    "AsyncClient",
    "BadRequest",
    "BlobMismatch",
    "Change",
    "Client",
    "Conflict",
    "ConnectionLost",
    "Ended",
    "Event",
    "Forbidden",
    "Fork",
    "GatewayError",
    "NotFound",
    "RateLimited",
    "Reset",
    "Run",
    "RunAccepted",
    "ServiceUnavailable",
    "SessionSocket",
    "SessionUsage",
    "TextDelta",
    "ToolCalled",
    "ToolReturned",
    "Transcript",
    "Unauthorized",
    "Usage",
    "Waiting",
    # Typed events (generated from the gateway's schema of its frames).
    "EVENT_TYPES",
    "Budget",
    "CancelRequestedData",
    "CancelRequestedEvent",
    "CancelledData",
    "CancelledEvent",
    "CompletedData",
    "CompletedEvent",
    "FailedData",
    "FailedEvent",
    "ResumedData",
    "ResumedEvent",
    "RunAcceptedData",
    "RunAcceptedEvent",
    "RunStartedData",
    "RunStartedEvent",
    "SessionForkedData",
    "SessionForkedEvent",
    "SignalReceivedData",
    "SignalReceivedEvent",
    "StepCompletedData",
    "StepCompletedEvent",
    "StepFailedData",
    "StepFailedEvent",
    "SuspendedData",
    "SuspendedEvent",
    "TimerFiredData",
    "TimerFiredEvent",
    "TimerScheduledData",
    "TimerScheduledEvent",
    "TokenData",
    "TokenEvent",
    "ToolCallData",
    "ToolCallEvent",
    "ToolResultData",
    "ToolResultEvent",
    "TypedEvent",
    "UsageData",
    "UsageEvent",
    "VersionMovedData",
    "VersionMovedEvent",
    "parse_event",
]
