"""Errors of the live event bus.

    AgentlaneError
    └── BusError                 live delivery cannot go on
        └── BusUnavailable       Pub/Sub (or the database behind the postgres bus) is unreachable
"""

from __future__ import annotations

from agentlane.errors import AgentlaneError


class BusError(AgentlaneError):
    """Live delivery cannot go on."""


class BusUnavailable(BusError):
    """The transport is unreachable right now; a new subscription later may succeed."""
