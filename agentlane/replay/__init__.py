"""``agentlane replay``: re-fold, verify, rebuild and export the event history (the audit CLI).

The command lives in :mod:`agentlane.replay.cli`; :func:`run_verify` is the whole of
``replay verify`` for callers that want the mismatches rather than the printout.
"""

from agentlane.replay.errors import NothingToReplay, RebuildUnavailable, ReplayError
from agentlane.replay.parallel import Outcome, run_verify
from agentlane.replay.verify import Mismatch, Summary

__all__ = [
    "Mismatch",
    "NothingToReplay",
    "Outcome",
    "RebuildUnavailable",
    "ReplayError",
    "Summary",
    "run_verify",
]
