"""Progress bars for the long commands (``dlq replay``, ``feed``, ``keys rotate``), drawn by rich on
standard error, and only on a terminal: piped or scripted, a command stays quiet."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

#: Called with (done, total) as the work goes on.
Report = Callable[[int, int], None]


def quiet(done: int, total: int) -> None:
    """No bar (the default of the functions that take one)."""


@contextmanager
def progress_bar(label: str, console: Console | None = None) -> Iterator[Report]:
    """A bar labelled ``label`` for the block's work; without a terminal, :func:`quiet`."""
    out = console or Console(stderr=True)
    if not out.is_terminal:
        yield quiet
        return
    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=out) as bar:
        task = bar.add_task(label, total=None)

        def report(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield report
