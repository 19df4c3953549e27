"""CLI options built from the config declarations (``config_option``) and the lazily loaded commands."""

from __future__ import annotations

import subprocess
import sys

import click
import typer
from typer.testing import CliRunner

from pipelines.configs import MixtureConfig
from samdata.cli.main import COMMANDS, app
from samdata.cli.options import config_option
from samdata.synth.configs import CganConfig, GanConfig
from training.config import TrainConfig
from training.eval_config import CompareConfig

CONFIG_MODULES = (
    "training.config",
    "training.eval_config",
    "samdata.synth.configs",
    "pipelines.configs",
    "samdata.ingest_config",
)


def test_option_takes_default_help_and_limits_from_the_field() -> None:
    steps = config_option(TrainConfig, "steps")
    assert (steps.default, steps.help, steps.min, steps.max) == (300, "Optimizer steps.", 1, None)
    assert config_option(CompareConfig, "clicks").default == "0,1,3,5"  # a tuple as the CLI spells it
    assert config_option(MixtureConfig, "splits").default == "0.7,0.15,0.15"
    assert config_option(TrainConfig, "store").default is ...  # a required field: a required option


def test_option_with_its_own_default_shows_the_configs() -> None:
    steps = config_option(TrainConfig, "steps", default=None)
    assert steps.default is None and steps.help == "Optimizer steps (default: 300)."
    size = config_option((CganConfig, GanConfig), "size", default=None, note="a note")
    assert size.help.endswith("; a note (default: CganConfig 256, GanConfig 64).")
    width = config_option((CganConfig, GanConfig), "width", default=None)
    assert width.help.endswith("(default: 16).")


def test_config_modules_load_no_torch_or_numpy() -> None:
    code = (
        f"import sys; import {', '.join(CONFIG_MODULES)}; "
        "print(sorted(m for m in ('torch', 'numpy', 'scipy', 'pandas') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_help_lists_commands_without_importing_them() -> None:
    code = (
        "import sys; from samdata.cli.main import app\n"
        "try:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('LOADED', sorted(m for m in sys.modules if m.startswith('samdata.cli.') and m not in "
        "('samdata.cli.main', 'samdata.cli.common')), 'pydantic' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("LOADED [] False")
    for name in COMMANDS:
        assert name in out


def test_command_table_matches_the_commands() -> None:
    group = typer.main.get_group(app)
    with click.Context(group) as ctx:
        for name, (_, line) in COMMANDS.items():
            command = group.get_command(ctx, name)
            assert command is not None and command.short_help == line
            assert " ".join((command.help or "").split()).startswith(line), name


def test_command_help_shows_the_config_defaults() -> None:
    result = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "Optimizer steps (default: 300)." in " ".join(result.output.split())
