"""The ``samdata`` command line: the composition root.

Every command imports the packages it needs inside its body so ``samdata --help`` stays fast; this
is the one place in ``samdata`` allowed to call ``storage``, ``pipelines``, ``training`` and ``flows``.
"""

from __future__ import annotations

import typer

from samdata.cli import curate, data, demo
from samdata.cli import train as train_cli
from samdata.cli import evaluate as evaluate_cli
from samdata.cli import compare as compare_cli
from samdata.cli import synth as synth_cli
from samdata.cli import flows as flows_cli

app = typer.Typer(
    name="samdata",
    help="Ingest medical datasets into a versioned slice store and adapt SAM to them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
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
