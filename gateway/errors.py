"""Errors of the gateway.

    AgentlaneError
    └── GatewayError           the gateway's own failures

What reaches a client is never an exception: bad frames get ``error`` frames, and a socket that
cannot go on is closed with a code (docs/contract.md). Bus failures are the bus's own
(:mod:`agentlane.bus.errors`); store failures the store's (:mod:`agentlane.errors`).
"""

from __future__ import annotations

from agentlane.errors import AgentlaneError


class GatewayError(AgentlaneError):
    """Root of the gateway's own errors."""
