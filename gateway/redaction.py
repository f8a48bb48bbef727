"""Keep tokens out of logs: uvicorn logs each WebSocket handshake's path *with* its query string,
and browsers pass their JWT as ``?token=``."""

from __future__ import annotations

import logging
import re

_TOKEN = re.compile(r"([?&]token=)[^&\s\"']+")


class _RedactTokens(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(
                _TOKEN.sub(r"\1***", arg) if isinstance(arg, str) else arg for arg in record.args
            )
        if isinstance(record.msg, str):
            record.msg = _TOKEN.sub(r"\1***", record.msg)
        return True


def redact_tokens_in_server_logs() -> None:
    """Install the filter on uvicorn's logger once (idempotent)."""
    server_logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _RedactTokens) for f in server_logger.filters):
        server_logger.addFilter(_RedactTokens())
