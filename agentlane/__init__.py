"""agentlane: durable, event-sourced AI-agent runs. The shared core of every component.

The core imports no component (``command_service``, ``runners``, ``projector``, ``gateway``) and
never :mod:`agentlane.cli`, the composition roots; ``tests/test_architecture.py`` enforces it.
"""

from agentlane.db import Database
from agentlane.errors import AgentlaneError
from agentlane.leases import Fence
from agentlane.records import Checkpoint, NewEvent, StoredEvent
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
    "Database",
    "EventStore",
    # errors
    "AgentlaneError",
]

__version__ = "0.1.0"
