"""Errors of ``agentlane replay``.

    AgentlaneError
    └── ReplayError              the audit CLI cannot do what was asked (exit 1, one line)
        ├── NothingToReplay      no events match (an unknown session, run or event id)
        └── AnchorError          an anchor or its key cannot be used (unsigned, another key)

Bad arguments never get here: argparse refuses them with exit 2. A failed ``verify`` is not an
error either: it prints every mismatch and exits 1.
"""

from __future__ import annotations

from agentlane.errors import AgentlaneError


class ReplayError(AgentlaneError):
    """Root of every error the replay CLI raises on purpose."""


class NothingToReplay(ReplayError):
    """No events match what was asked for (another tenant's events included)."""

    def __init__(self, what: str) -> None:
        super().__init__(f"{what}: no events found")
        self.what = what


class AnchorError(ReplayError):
    """An anchor or its key cannot be used (unreadable, badly signed, signed by another key)."""
