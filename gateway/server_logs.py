"""What uvicorn logs about WebSocket handshakes, made fit for a gateway's logs.

- Tokens stay out: uvicorn logs each handshake's path *with* its query string, and browsers pass
  their JWT as ``?token=``. The parameter is recognised as the server reads it, after
  percent-decoding its name (``?%74oken=`` is ``token`` to Starlette, and was logged in full).
- The three lines each socket writes (accepted, open, closed) are DEBUG, not INFO: a reconnect
  storm of 10,000 sockets would otherwise write 30,000 lines while the process is busiest
  (refusals stay at INFO).
"""

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


#: The lines every socket writes: uvicorn's for an accepted WebSocket (the same in its three
#: implementations), and those of the websockets protocol it runs, which logs to uvicorn's logger.
_PER_SOCKET = frozenset({
    '%s - "WebSocket %s" [accepted]', "connection open", "connection closed"
})
_GATEWAY_LOGGER = logging.getLogger("gateway")


class _PerSocketAtDebug(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or record.msg not in _PER_SOCKET:
            return True
        if not _GATEWAY_LOGGER.isEnabledFor(logging.DEBUG):
            return False
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


def tame_server_logs() -> None:
    """Install the filters on uvicorn's logger once (idempotent)."""
    server_logger = logging.getLogger("uvicorn.error")
    for kind in (_RedactTokens, _PerSocketAtDebug):
        if not any(isinstance(f, kind) for f in server_logger.filters):
            server_logger.addFilter(kind())
