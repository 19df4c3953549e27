"""Shared CLI plumbing: the consoles, error reporting with exit codes, and the one rich progress display."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import typer
from rich.console import Console

from samdata.errors import ConfigError, SamdataError

#: exit codes: 0 success; 1 the command ran and failed (bad input data, a failed case, a broken store,
#: training stopped); 2 it cannot start as called (option, value, unknown name, a path / case / snapshot
#: that does not exist, a missing extra; Typer's own usage errors exit 2 too)
EXIT_FAILURE, EXIT_USAGE = 1, 2
console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print one red error line and exit with ``code``."""
    from rich.markup import escape

    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, markup=True)  # '[x]' stays text
    raise typer.Exit(code)


def exit_code(err: SamdataError) -> int:
    """The exit code of an error's kind: :data:`EXIT_USAGE` when the command cannot start as called (a bad
    value or unknown name, a path, case or snapshot that does not exist, a missing extra), else
    :data:`EXIT_FAILURE` (it ran and the input or the work failed: an unreadable file, invalid data, a broken
    store, training stopped). CaseNotFound and StoreNotFound are FileNotFoundErrors, SnapshotNotFound a
    LookupError."""
    return EXIT_USAGE if isinstance(err, ConfigError | FileNotFoundError | LookupError) else EXIT_FAILURE


def interactive() -> bool:
    """Whether stderr is a terminal (progress bars of unknown length are shown only there)."""
    return sys.stderr.isatty()


class Bar:
    """One task of a :class:`Bars` display: ``advance(n)`` or ``update(completed, total, status)``."""

    def __init__(self, progress: Any, task: Any) -> None:
        self._progress, self._task = progress, task

    def advance(self, n: int = 1) -> None:
        """Count ``n`` more items done."""
        self._progress.advance(self._task, n)

    def update(self, completed: int, total: int | None = None, status: str = "") -> None:
        """Set the items done, the total (when known) and the status text after the count."""
        if total is not None:
            self._progress.update(self._task, total=total)
        self._progress.update(self._task, completed=completed, status=status)


class Bars:
    """A rich progress display on stderr with one bar per task or stage."""

    def __init__(self, progress: Any) -> None:
        self._progress = progress

    def add(self, description: str, total: int | None = None) -> Bar:
        """A new bar titled ``description`` (plain text) of ``total`` items (None: not known yet)."""
        from rich.markup import escape

        return Bar(self._progress, self._progress.add_task(escape(description), total=total, status=""))

    def stage(self, description: str, total: int) -> Callable[[int], None]:
        """Start a stage; returns ``advance(n)`` (the progress protocol of evaluate, compare and predict)."""
        return self.add(description, total).advance

    def print(self, text: str) -> None:
        """Print a plain line above the bars."""
        self._progress.console.print(text, markup=False, highlight=False)


@contextmanager
def progress(disable: bool = False) -> Iterator[Bars]:
    """The CLI's progress display (spinner, title, bar, count, status, elapsed and remaining time) on stderr;
    ``disable`` silences it (e.g. ``not interactive()`` for output that is not a terminal)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=disable,
    ) as bars:
        yield Bars(bars)
