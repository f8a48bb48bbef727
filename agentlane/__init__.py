"""agentlane: durable, event-sourced AI-agent runs. The shared core of every component."""

from agentlane.errors import AgentlaneError
from agentlane.records import Checkpoint, Fence, NewEvent, StoredEvent
from agentlane.settings import Settings
from agentlane.store import AppendResult, EventStore

__all__ = [
    # settings
    "Settings",
    # events
    "Checkpoint",
    "Fence",
    "NewEvent",
    "StoredEvent",
    # the store
    "AppendResult",
    "EventStore",
    # errors
    "AgentlaneError",
]

__version__ = "0.1.0"
