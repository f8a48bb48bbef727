"""``agentlane replay``: re-fold, verify, rebuild and export the event history (the audit CLI)."""

from agentlane.replay.errors import NothingToReplay, RebuildUnavailable, ReplayError
from agentlane.replay.verify import Mismatch, Summary, verify

__all__ = [
    "Mismatch",
    "NothingToReplay",
    "RebuildUnavailable",
    "ReplayError",
    "Summary",
    "verify",
]
