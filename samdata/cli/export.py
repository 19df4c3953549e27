"""``samdata export``: write store cases in the formats other tools read, one subcommand per format.

Each subcommand is one self-contained function on the ``export`` group below (its imports inside it), so a
new format is one more function.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from samdata.cli.options import StoreArg

export = typer.Typer(help="Write store cases in the formats other tools read (viewers, nnU-Net).", no_args_is_help=True)


@export.command("ome-zarr")
def ome_zarr(
    store: StoreArg,
    out: Annotated[Path, typer.Argument(help="Folder to write one CASE.ome.zarr image per case into.")],
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
    from samdata.cli.common import interactive, progress
    from samdata.cli.common import out as stdout
    from storage.omezarr import ExportedCase, export_ome_zarr

    with progress(disable=not interactive()) as bars:
        bar = bars.add("export ome-zarr")

        def done(item: ExportedCase) -> None:
            bar.update(item.position, item.total, item.case_id)

        paths = export_ome_zarr(
            store, out, case or None, snapshot, mixture, version=ngff, overwrite=overwrite, on_case=done
        )
    for path in paths:
        stdout.print(str(path), highlight=False)
    stdout.print(
        f"exported {len(paths)} case(s) as OME-Zarr {ngff}; view one with: napari {paths[0] if paths else out}"
    )


def register(app: typer.Typer) -> None:
    """Add the ``export`` command group to the top-level app."""
    app.add_typer(export, name="export")
