"""The ``samdata`` command line: the composition root.

Commands are loaded lazily (:class:`Guarded`), and each imports the heavy packages it needs inside its body,
so ``samdata --help`` stays fast; ``samdata/cli`` is the one place in ``samdata`` allowed to call ``storage``,
``pipelines``, ``training`` and ``flows``.
"""

from __future__ import annotations

import importlib
import logging
from typing import Annotated, Any

import click
import typer
from typer.core import TyperGroup

from samdata.cli.common import exit_code, fail
from samdata.errors import SamdataError

#: every command: name → (the module whose ``register(app)`` adds it, its line in ``samdata --help``). A command's
#: module is imported only when that command runs or shows its own help (it reads the configs it mirrors, which
#: loads pydantic), so ``samdata --help`` lists the commands from here.
COMMANDS: dict[str, tuple[str, str]] = {
    "ingest": ("samdata.cli.data", "Ingest a dataset into the slice store in one commit (idempotent, resumable)."),
    "info": (
        "samdata.cli.data",
        "Cases, slices, labelled slices, objects per label, origins, prompt sets, mixtures, renamed cases, snapshots.",
    ),
    "verify": (
        "samdata.cli.data",
        "Check every chunk decodes, the index agrees with the pixels and metadata is complete (exit 1 if not).",
    ),
    "demo": (
        "samdata.cli.demo",
        "Sample data → ingest → synthetic pairs → prompts → mixture → fine-tune → evaluate → HTML report.",
    ),
    "prompts": (
        "samdata.cli.curate",
        "Draw one seeded prompt per (case, slice, label) object and commit it as a prompt set.",
    ),
    "mixture": (
        "samdata.cli.curate",
        "Split the cases by case (synthetic only in train), weight them, and commit the mixture.",
    ),
    "show": (
        "samdata.cli.curate",
        "Draw one slice with label outlines and prompts, or a grid of a mixture's weighted train samples.",
    ),
    "train": (
        "samdata.cli.train",
        "Fine-tune SAM with adapters on a mixture (under torchrun: DDP over the processes).",
    ),
    "evaluate": (
        "samdata.cli.evaluate",
        "Dice, IoU, NSD, HD95 and MAE per case and label on a split, adapted vs zero-shot (JSON, Markdown, figure), "
        "and 3D scores per case with nnU-Net's summary.json.",
    ),
    "predict": (
        "samdata.cli.evaluate",
        "Segment a new image with a run from a box (propagated through the volume), a prompt mask, or with "
        "--auto from its proposer's boxes (no prompt); a U-Net run takes no prompt and segments every slice.",
    ),
    "compare": (
        "samdata.cli.compare",
        "Compare runs and zero-shot SAM on the same objects and prompts: Dice, IoU, NSD, HD95, parameters, clicks.",
    ),
    "sample-data": ("samdata.cli.data", "Write embedded sample datasets (no download)."),
    "synth": (
        "samdata.cli.synth",
        "Synthetic image/mask pairs: generators driven by label maps (deform, "
        "labels2image, cgan), a few-shot GAN (fastgan), the quality gate, medigan "
        "packages.",
    ),
    "export": (
        "samdata.cli.export",
        "Write store cases for other tools: ome-zarr (viewers: napari, Fiji), nnunet (an nnU-Net v2 raw dataset).",
    ),
    "flows": ("samdata.cli.flows", "Prefect flows: run one now, list them, or serve the scheduled deployments."),
}


def load_commands(module: str) -> dict[str, click.Command]:
    """The click commands that ``module``'s ``register(app)`` adds, by name, each with its line from COMMANDS."""
    sub = typer.Typer()
    importlib.import_module(module).register(sub)
    commands = typer.main.get_group(sub).commands
    for name, command in commands.items():
        command.short_help = COMMANDS[name][1]
    return commands


class Guarded(TyperGroup):
    """The root command group: the one error handler of every command, and the lazy loader of their modules.

    A :class:`SamdataError` that a command raises becomes one red line and the exit code of its kind
    (:func:`samdata.cli.common.exit_code`). A command's module is imported when the command is looked up to run
    or to show its help; the group's own help lists :data:`COMMANDS` without importing any."""

    listing = False  # True while the group's own help is written

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            if self.listing:
                return click.Command(cmd_name, short_help=COMMANDS[cmd_name][1])
            self.commands.update(load_commands(COMMANDS[cmd_name][0]))
        return super().get_command(ctx, cmd_name)

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self.listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self.listing = False

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
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    log_level: Annotated[
        str, typer.Option(help="samdata's log messages from this level up: debug, info, warning, error.")
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


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
