"""Progress of long work: a rich bar on a terminal, nothing at all when stderr is not one.

The bar goes to stderr, so ``agentlane replay export > file`` still shows it while the data goes to
the file; under a pipe or in CI (stderr not a terminal) the commands stay quiet.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

Advance = Callable[[int], None]


class Bar:
    """What long work reports to: ``advance(n)`` and, once known, ``set_total(n)``."""

    def __init__(self, progress: Progress | None = None, task: TaskID | None = None) -> None:
        self._progress = progress
        self._task = task

    @property
    def enabled(self) -> bool:
        return self._progress is not None

    def advance(self, steps: int) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, steps)

    def write_line(self, line: str) -> None:
        """A line for stdout; above the bar when both share a terminal."""
        if self._progress is not None and sys.stdout.isatty():
            self._progress.console.print(line, markup=False, highlight=False, soft_wrap=True)
        else:
            sys.stdout.write(line + "\n")

    def set_total(self, total: int) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, total=total)


def wanted() -> bool:
    """Draw progress only for a person watching a terminal."""
    return sys.stderr.isatty()


@contextlib.contextmanager
def progress(description: str, total: int | None, *, enabled: bool) -> Iterator[Bar]:
    """A :class:`Bar` drawn on stderr when ``enabled``, else one that does nothing."""
    if not enabled:
        yield Bar()
        return
    with Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
        # The data goes to stdout untouched (rich would otherwise capture it above the bar).
        redirect_stdout=False,
        redirect_stderr=False,
    ) as drawn:
        yield Bar(drawn, drawn.add_task(description, total=total))
