"""Keep tokens out of logs: uvicorn logs each WebSocket handshake's path *with* its query string,
and browsers pass their JWT as ``?token=``. The parameter is recognised as the server reads it,
after percent-decoding its name (``?%74oken=`` is ``token`` to Starlette, and was logged in
full)."""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote_plus

_PARAMETER = re.compile(r"([?&])([^=&\s\"'#]+)=([^&\s\"'#]*)")


def redact_tokens(text: str) -> str:
    """``text`` with the value of every query parameter named ``token`` (however its name is
    percent-encoded) replaced by ``***``."""
    return _PARAMETER.sub(_redact_parameter, text)


def _redact_parameter(match: re.Match[str]) -> str:
    if unquote_plus(match.group(2)) != "token":
        return match.group(0)
    return f"{match.group(1)}{match.group(2)}=***"


class _RedactTokens(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(
                redact_tokens(arg) if isinstance(arg, str) else arg for arg in record.args
            )
        if isinstance(record.msg, str):
            record.msg = redact_tokens(record.msg)
        return True


def redact_tokens_in_server_logs() -> None:
    """Install the filter on uvicorn's logger once (idempotent)."""
    server_logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _RedactTokens) for f in server_logger.filters):
        server_logger.addFilter(_RedactTokens())
