"""``samdata export``: write store cases in the formats other tools read, one subcommand per format.

Each subcommand is one function on the ``export`` group below (its heavy imports inside it), so a new format
is one more function.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from pipelines.configs import NnunetExportConfig
from samdata.cli.common import interactive, out, progress
from samdata.cli.options import JsonOpt, StoreArg, config_option

export = typer.Typer(
    help="Write store cases for other tools: ome-zarr (viewers: napari, Fiji), nnunet (an nnU-Net v2 raw dataset).",
    no_args_is_help=True,
)


@export.command("ome-zarr")
def ome_zarr(
    store: StoreArg,
    dest: Annotated[Path, typer.Argument(help="Folder to write one CASE.ome.zarr image per case into.")],
    case: Annotated[
        Optional[list[str]], typer.Option("--case", help="Case id to export (repeat; default: every case).")
    ] = None,
    snapshot: Annotated[
        Optional[str],
        typer.Option(help="Store snapshot to read (default: the head, or the snapshot --mixture was drawn from)."),
    ] = None,
    mixture: Annotated[
        Optional[str], typer.Option(help="Export this mixture's cases, with their split in the attributes.")
    ] = None,
    ngff: Annotated[
        str, typer.Option("--ngff", help="OME-NGFF version: 0.5 (Zarr v3) or 0.4 (Zarr v2, for older readers).")
    ] = "0.5",
    overwrite: Annotated[bool, typer.Option(help="Replace images that already exist in OUT.")] = False,
) -> None:
    """OME-Zarr images for viewers (napari, Fiji, Neuroglancer): a multiscale image in millimetres per case, its
    label map as an NGFF label image with names and colours, and its provenance in the attributes."""
    from storage.omezarr import ExportedCase, export_ome_zarr

    with progress(disable=not interactive()) as bars:
        bar = bars.add("export ome-zarr")

        def done(item: ExportedCase) -> None:
            bar.update(item.position, item.total, item.case_id)

        paths = export_ome_zarr(
            store, dest, case or None, snapshot, mixture, version=ngff, overwrite=overwrite, on_case=done
        )
    for path in paths:
        out.print(str(path), highlight=False)
    out.print(f"exported {len(paths)} case(s) as OME-Zarr {ngff}; view one with: napari {paths[0] if paths else dest}")


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
