"""Shared CLI plumbing: error reporting with exit codes, and rich progress bars."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import typer
from rich.console import Console

from samdata.errors import ConfigError, SamdataError

#: exit codes: 0 success; 1 the command ran and failed (bad input data, a failed case, a broken store,
#: training stopped); 2 it cannot start as called (option, value, unknown name, a path / case / snapshot
#: that does not exist, a missing extra; Typer's own usage errors exit 2 too)
EXIT_FAILURE, EXIT_USAGE = 1, 2
console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)
T = TypeVar("T")


def fail(message: str, code: int = EXIT_USAGE) -> None:
    """Print one red error line and exit with ``code``."""
    from rich.markup import escape

    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, markup=True)  # '[x]' stays text
    raise typer.Exit(code)


def guarded(fn: Callable[[], T]) -> T:
    """Run ``fn``; turn a :class:`SamdataError` into a one-line message and the exit code of its kind:
    :data:`EXIT_USAGE` when the command cannot start as called (a bad value or unknown name, a path, case or
    snapshot that does not exist, a missing extra), else :data:`EXIT_FAILURE` (it ran and the input or the
    work failed: an unreadable file, invalid data, a broken store, training stopped)."""
    try:
        return fn()
    except SamdataError as err:  # CaseNotFound, StoreNotFound are FileNotFoundErrors; SnapshotNotFound a LookupError
        fail(str(err), EXIT_USAGE if isinstance(err, ConfigError | FileNotFoundError | LookupError) else EXIT_FAILURE)
    raise AssertionError("unreachable")


@contextmanager
def progress_bar(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr; yields ``advance(n)``. Silent when stderr is not a terminal-like."""
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    with Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(), console=console,
                  disable=not sys.stderr.isatty() and total is None) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)


@contextmanager
def stage_bars() -> Iterator[Callable[[str, int], Callable[[int], None]]]:
    """Rich progress bars on stderr, one per stage: yields ``stages(description, total)`` → ``advance(n)``
    (the progress protocol of evaluate, compare and predict). Silent when stderr is not a terminal."""
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    with Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=console,
                  disable=not sys.stderr.isatty()) as bar:
        def stages(description: str, total: int) -> Callable[[int], None]:
            task = bar.add_task(escape_markup(description), total=total)
            return lambda n=1: bar.advance(task, n)

        yield stages


def escape_markup(text: str) -> str:
    """``text`` with rich markup characters escaped."""
    from rich.markup import escape

    return escape(text)
