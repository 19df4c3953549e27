"""The ``export`` command group: the store and its mixtures in the formats other tools of the field read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from pipelines.configs import NnunetExportConfig
from samdata.cli.common import interactive, out, progress
from samdata.cli.options import JsonOpt, StoreArg, config_option

export = typer.Typer(help="Write the store or a mixture for other tools (nnU-Net).", no_args_is_help=True)


@export.command("nnunet")
def nnunet(
    store: StoreArg,
    dest: Annotated[Path, typer.Argument(help="nnU-Net raw folder (nnUNet_raw) that receives DatasetXXX_Name/.")],
    mixture: Annotated[str, typer.Option(help="Mixture whose train and test cases are written.")],
    synthetic: bool = config_option(NnunetExportConfig, "synthetic", "--synthetic/--no-synthetic"),
    dataset_id: int = config_option(NnunetExportConfig, "dataset_id", "--dataset-id"),
    name: Optional[str] = config_option(NnunetExportConfig, "name", "--name"),
    train_slices: Optional[str] = config_option(NnunetExportConfig, "train_slices", "--train-slices"),
    overwrite: Annotated[bool, typer.Option(help="Replace the dataset folder if it exists.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Write a mixture as an nnU-Net v2 raw dataset (imagesTr, labelsTr, imagesTs, dataset.json) on each
    case's source grid, for ``nnUNetv2_plan_and_preprocess`` and ``nnUNetv2_train``."""
    from pipelines.nnunet import export_nnunet

    config = NnunetExportConfig(dataset_id=dataset_id, name=name, synthetic=synthetic, train_slices=train_slices)
    with progress(disable=not interactive()) as bars:
        bar = bars.add(f"export {mixture} to nnU-Net")
        folder = export_nnunet(store, dest, mixture, config, overwrite=overwrite, progress=lambda _case: bar.advance())
    dataset = json.loads((folder / "dataset.json").read_text(encoding="utf-8"))
    if json_out:
        out.print_json(json.dumps({"folder": str(folder), **dataset}))
        return
    out.print(
        f"wrote [bold]{folder}[/]: {dataset['numTraining']} training and {dataset['numTest']} test cases, "
        f"labels {dataset['labels']}; next: nnUNetv2_plan_and_preprocess -d {config.dataset_id} "
        f"--verify_dataset_integrity (with nnUNet_raw={folder.parent})",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    """Add the ``export`` command group to the top-level app."""
    app.add_typer(export, name="export")
