"""The CLI's shared options and arguments, declared once for every command (``samdata/cli/*``).

Defaults that commands share live here too (``DEFAULT_DEVICE``, ``DEFAULT_TTA``), so that two commands
never disagree on them; a command imports its options from this module, never from another command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

#: ``--device`` of every command that runs a model: CUDA when present, else the CPU.
DEFAULT_DEVICE = "auto"
#: ``--tta`` of every command that predicts: no test-time mirroring.
DEFAULT_TTA = "none"

StoreArg = Annotated[str, typer.Argument(help="Store folder or s3://bucket/prefix.")]
StoreOpt = Annotated[str, typer.Option(help="Store folder or s3://bucket/prefix.")]
RunArg = Annotated[Path, typer.Argument(help="Run directory written by `samdata train`.")]
RunStoreOpt = Annotated[Optional[str], typer.Option(
    help="Store folder or s3://bucket/prefix (default: the store the run trained on).")]
DeviceOpt = Annotated[str, typer.Option(help="Torch device for the model: auto (CUDA if present), cpu, cuda, cuda:N.")]
TtaOpt = Annotated[str, typer.Option(
    help="Test-time mirroring, probabilities averaged: none; lr (as is + left-right, 2 passes); flip (all 4 "
         "mirror views, nnU-Net's default, 4 passes).")]
SlicesOpt = Annotated[Optional[str], typer.Option(help="Only these slices, a z spec like 51-135:6 or 4,8,10-12.")]
ToleranceOpt = Annotated[float, typer.Option(help="Normalised surface Dice tolerance in mm.")]
BatchSlicesOpt = Annotated[int, typer.Option(
    min=1, help="Slices per encoder batch (more: more memory, no faster on a CPU).")]
FeedLogitsOpt = Annotated[Optional[bool], typer.Option(
    "--feed-logits/--no-feed-logits",
    help="With clicks: feed the previous logits back as mask prompt (default: on, but off for litemedsam unless "
         "the run trained with fed-back click rounds).")]
ResumeOpt = Annotated[bool, typer.Option(help="Continue the run in --out from its last checkpoint.")]
WorkersOpt = Annotated[Optional[int], typer.Option(
    min=1, help="Local Dask worker processes for the parallel tasks (1 = in the flow's process).")]
AddressOpt = Annotated[Optional[str], typer.Option(help="Address of an existing Dask scheduler, tcp://host:8786.")]


JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
