"""Retry policies of activities: attempts, backoff, and which errors are worth retrying."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta


class NonRetryable(Exception):
    """Raise (or raise from) this in an activity to fail the step without further attempts."""


class RetryLater(Exception):
    """An activity's retryable failure that names when to try again (e.g. HTTP Retry-After)."""

    def __init__(self, message: str, *, after: timedelta | None = None) -> None:
        super().__init__(message)
        self.after = after


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Attempts of one activity step. ``max_attempts`` counts the first try."""

    max_attempts: int = 3
    initial_interval: timedelta = timedelta(milliseconds=200)
    backoff: float = 2.0
    max_interval: timedelta = timedelta(seconds=30)
    non_retryable: tuple[type[BaseException], ...] = field(default=())

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if self.backoff < 1:
            raise ValueError("backoff must be >= 1")

    def is_retryable(self, error: BaseException) -> bool:
        return not isinstance(error, (NonRetryable, *self.non_retryable))

    def delay(self, attempt: int, error: BaseException) -> timedelta:
        """How long to wait after failed ``attempt`` (1-based); a longer RetryLater hint wins."""
        seconds = self.initial_interval.total_seconds() * self.backoff ** (attempt - 1)
        delay = min(timedelta(seconds=seconds), self.max_interval)
        hint = error.after if isinstance(error, RetryLater) else None
        # The server's own Retry-After is honoured even beyond max_interval: retrying sooner only
        # earns another 429.
        if hint is not None and hint > delay:
            return hint
        return delay


#: One attempt, no retries: for steps whose side effect must not repeat within one run of the code.
NO_RETRY = RetryPolicy(max_attempts=1)
