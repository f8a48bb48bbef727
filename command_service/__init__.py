"""The HTTP command API: start, poll, stream, cancel and signal runs (docs/contract.md, "HTTP")."""

from command_service.admission import Limits
from command_service.app import build_app
from command_service.component import CommandService
from command_service.errors import CommandServiceError, RequestRejected

__all__ = [
    "CommandService",
    "CommandServiceError",
    "Limits",
    "RequestRejected",
    "build_app",
]
