"""The audit: re-fold, verify and export the event history (``agentlane replay``'s library).

The command itself is :mod:`agentlane.cli.replay`; :func:`run_verify` is the whole of
``replay verify`` for callers that want the mismatches rather than the printout.
"""

from agentlane.replay.errors import NothingToReplay, ReplayError
from agentlane.replay.parallel import VerifyResult, run_verify
from agentlane.replay.verify import Mismatch, Summary

__all__ = [
    "Mismatch",
    "NothingToReplay",
    "ReplayError",
    "Summary",
    "VerifyResult",
    "run_verify",
]
