"""Run a coroutine inline until it would wait, and only then give it a task.

A send to a socket whose transport is writable completes without waiting: fanning an event out
to 10,000 such sockets need not create 10,000 tasks (asyncio's eager task factory, which does
this, arrives in Python 3.12).
"""

from __future__ import annotations

import types
from collections.abc import Coroutine, Generator
from typing import Any


def run_until_blocked(coroutine: Coroutine[Any, Any, None]) -> Coroutine[Any, Any, None] | None:
    """Step ``coroutine`` in the caller; None if it finished, else an awaitable that finishes it
    (await it in a task). An exception it raises before waiting propagates here."""
    try:
        blocked_on = coroutine.send(None)
    except StopIteration:
        return None
    return _resume(coroutine, blocked_on)


@types.coroutine
def _resume(coroutine: Coroutine[Any, Any, None], blocked_on: Any) -> Generator[Any, Any, None]:
    # The task awaiting this sees the future the coroutine blocked on, and what the task sends
    # or throws back goes to the coroutine: ``yield from`` for a coroutine already started.
    while True:
        try:
            value = yield blocked_on
        except BaseException as exc:
            try:
                blocked_on = coroutine.throw(exc)
            except StopIteration:
                return
        else:
            try:
                blocked_on = coroutine.send(value)
            except StopIteration:
                return
