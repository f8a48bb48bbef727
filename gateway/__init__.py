"""The WebSocket gateway: a session's events over ``/ws/{sessionId}``, history first, then live.

Sockets are a projection of the event store, never a source of truth: a socket that falls behind
is closed (4008) and the client resumes from its ``lastEventId``.
"""

from gateway.component import UVICORN_WS_OPTIONS, Gateway, GatewayOptions
from gateway.errors import GatewayError
from gateway.hub import Hub, LiveEvent
from gateway.sockets import SocketPolicy
from gateway.sources import BusSource, LiveSource

__all__ = [
    "UVICORN_WS_OPTIONS",
    "BusSource",
    "Gateway",
    "GatewayError",
    "GatewayOptions",
    "Hub",
    "LiveEvent",
    "LiveSource",
    "SocketPolicy",
]
