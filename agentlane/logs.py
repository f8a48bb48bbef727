"""JSON log lines with the tenant, session, execution and step of the work being done.

The four ids live in context variables, so every line logged inside ``log_context(...)`` carries
them, across awaits, without passing loggers around.

The JSON lines are what Cloud Logging reads from a container's stderr (its "structured logging"
special fields): ``severity``, an RFC 3339 UTC ``time``, ``stack_trace`` for an exception (Error
Reporting groups those), and, inside a span when tracing is on (:mod:`agentlane.telemetry`) or
else inside a request that carried a W3C ``traceparent`` (:mod:`agentlane.trace_context`),
``logging.googleapis.com/trace``, ``…/spanId`` and ``…/trace_sampled``, so the lines show under
their trace.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from pythonjsonlogger.json import JsonFormatter

from agentlane import telemetry

_CONTEXT_FIELDS = ("tenant", "session", "execution", "step")
_context: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar(
    "agentlane_log_context",
    default={},  # noqa: B039 - never mutated, always replaced
)
_URL_PASSWORD = re.compile(r"(://[^:/@\s]+:)[^@\s]+@")


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Attach ``tenant``/``session``/``execution``/``step`` (and more) to every line inside."""
    token = _context.set(_with(fields))
    try:
        yield
    finally:
        _context.reset(token)


def bind_log_context(**fields: Any) -> None:
    """Attach fields to every line for the rest of the current task: for a task that ends with
    what it logs about (a socket's handler), without a context manager held for its whole life."""
    _context.set(_with(fields))


def _with(fields: dict[str, Any]) -> dict[str, Any]:
    return {**_context.get(), **{k: v for k, v in fields.items() if v is not None}}


def redact(text: str) -> str:
    """Remove passwords from URLs (``postgresql://user:secret@host`` → ``user:***@host``)."""
    return _URL_PASSWORD.sub(r"\1***@", text)


class _ContextFilter(logging.Filter):
    def __init__(self, component: str) -> None:
        super().__init__()
        self.component = component

    def filter(self, record: logging.LogRecord) -> bool:
        record.component = self.component
        # The active span, when tracing is on, names the trace more precisely than a header did.
        if (ids := telemetry.trace_ids()) is not None:
            record.trace, record.span, record.trace_sampled = ids
        for key, value in _context.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        # Redact the formatted message: a secret may come in through the arguments too.
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


class CloudLoggingFormatter(JsonFormatter):
    """One JSON object per line, in Cloud Logging's field names (see the module docstring);
    ``project`` makes the trace field the full ``projects/P/traces/T`` Cloud Logging links."""

    def __init__(self, project: str | None = None) -> None:
        super().__init__(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={
                "asctime": "time", "levelname": "severity", "name": "logger",
                "exc_info": "stack_trace",
            },
            timestamp=False,
        )
        self._project = project

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        moment = datetime.fromtimestamp(record.created, UTC)
        return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        trace = log_data.pop("trace", None)
        span = log_data.pop("span", None)
        sampled = log_data.pop("trace_sampled", None)
        if trace:
            project = self._project
            log_data[_TRACE] = f"projects/{project}/traces/{trace}" if project else trace
        if span:
            log_data[_SPAN] = span
        if sampled is not None:
            log_data[_SAMPLED] = sampled
        return log_data


_TRACE = "logging.googleapis.com/trace"
_SPAN = "logging.googleapis.com/spanId"
_SAMPLED = "logging.googleapis.com/trace_sampled"


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        extras = " ".join(
            f"{key}={getattr(record, key)}" for key in _CONTEXT_FIELDS if hasattr(record, key)
        )
        return f"{base} {extras}".rstrip()


def configure_logging(
    component: str, *, level: str = "INFO", json_lines: bool = True, project: str | None = None
) -> None:
    """Send this process's logs to stderr, one JSON object per line (or readable text);
    ``project`` is the Google Cloud project traces belong to."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_ContextFilter(component))
    if json_lines:
        handler.setFormatter(CloudLoggingFormatter(project))
    else:
        handler.setFormatter(_TextFormatter(f"%(asctime)s {component} %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Library chatter at INFO drowns our lines; their warnings still come through.
    for noisy in ("httpx", "httpcore", "openai", "google", "grpc", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
