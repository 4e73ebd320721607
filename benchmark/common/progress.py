"""rich progress bars for every long phase, on standard error so tables on standard output stay clean."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(width=None if Console().is_terminal else 200)
status_console = Console(stderr=True)


def silence() -> None:
    """No output from this process (a training process other than the main one)."""
    console.quiet = True
    status_console.quiet = True


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """No output from this toolkit's consoles inside the block, as before it after (a script that rebuilds a
    run's data in a process that goes on printing, or a test)."""
    saved = console.quiet, status_console.quiet
    silence()
    try:
        yield
    finally:
        console.quiet, status_console.quiet = saved


def make_progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=status_console,
        transient=False,
    )


@contextlib.contextmanager
def bar(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A progress bar; the yielded function advances it by n."""
    with make_progress() as progress:
        task = progress.add_task(description, total=total)
        yield lambda n=1: progress.advance(task, n)


def say(message: str) -> None:
    status_console.print(message)
