"""Shared CLI plumbing: error reporting with exit codes, and rich progress bars."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import typer
from rich.console import Console

from samdata.errors import SamdataError

console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)
T = TypeVar("T")


def fail(message: str, code: int = 2) -> None:
    """Print one red error line and exit with ``code``."""
    console.print(f"[bold red]error:[/] {message}", highlight=False, markup=True)
    raise typer.Exit(code)


def guarded(fn: Callable[[], T]) -> T:
    """Run ``fn``; turn a :class:`SamdataError` into a one-line message and exit code 2."""
    try:
        return fn()
    except SamdataError as err:
        fail(str(err))
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
