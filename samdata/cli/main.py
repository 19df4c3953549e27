"""The ``samdata`` command line: the composition root.

Every command imports the packages it needs inside its body so ``samdata --help`` stays fast; this
is the one place in ``samdata`` allowed to call ``storage``, ``pipelines``, ``training`` and ``flows``.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

import click
import typer
from typer.core import TyperGroup

from samdata.cli import curate, data, demo
from samdata.cli import train as train_cli
from samdata.cli import evaluate as evaluate_cli
from samdata.cli import compare as compare_cli
from samdata.cli import synth as synth_cli
from samdata.cli import flows as flows_cli
from samdata.cli.common import exit_code, fail
from samdata.errors import SamdataError


class Guarded(TyperGroup):
    """The root command group: the one error handler of every command. A :class:`SamdataError` that a
    command raises becomes one red line and the exit code of its kind (:func:`samdata.cli.common.exit_code`)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SamdataError as err:
            fail(str(err), exit_code(err))


app = typer.Typer(
    cls=Guarded,
    name="samdata",
    help="Ingest medical datasets into a versioned slice store and adapt SAM to them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
LOG_LEVELS = ("debug", "info", "warning", "error")
PACKAGES = ("samdata", "storage", "pipelines", "training", "flows")


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"samdata {version('samdata')}")
        except PackageNotFoundError:
            typer.echo("samdata (not installed as a distribution)")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
    log_level: Annotated[str, typer.Option(help="samdata's log messages from this level up: debug, info, warning, "
                                                "error.")
                         ] = "warning",
) -> None:
    """Ingest medical datasets into a versioned slice store and adapt SAM to them.

    Exit codes: 0 success; 1 the command ran and failed (bad input data, a failed case, a broken store,
    training stopped); 2 it cannot start as called (option, value, unknown name, a missing path, case or
    snapshot, a missing extra).
    """
    if log_level.lower() not in LOG_LEVELS:
        raise typer.BadParameter(f"{log_level!r}; expected one of {', '.join(LOG_LEVELS)}", param_hint="--log-level")
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    for package in PACKAGES:  # samdata's own loggers only: Prefect, Dask and torch keep their settings
        logger = logging.getLogger(package)
        logger.setLevel(log_level.upper())
        if not logger.handlers:
            logger.addHandler(handler)
        logger.propagate = False


data.register(app)
demo.register(app)
curate.register(app)
train_cli.register(app)
evaluate_cli.register(app)
compare_cli.register(app)
synth_cli.register(app)
flows_cli.register(app)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
