"""``export_flow``: the store's cases as OME-Zarr images (viewers) or a mixture as an nnU-Net v2 raw dataset,
with the written path published as the run's artifact (``export-<folder>``).

One task around the writer (:func:`storage.omezarr.export_ome_zarr`, :func:`pipelines.nnunet.export_nnunet`):
both stream case by case and write each image or dataset to a hidden folder renamed when complete, so a retry
with ``overwrite`` replaces what a failed attempt left. ``build_and_train`` runs it for each export it is asked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE
from pydantic import create_model, model_validator

from flows.artifacts import markdown_table, publish
from flows.ingest import IO_RETRIES, IO_RETRY_DELAY_S
from flows.params import Params
from pipelines.configs import NnunetExportConfig
from samdata.config import model_fields
from samdata.errors import ConfigError

FORMATS = ("ome-zarr", "nnunet")


class _ExportFields(Params):
    """Base of :class:`ExportParams`: the format, where to write and what to read."""

    format: Literal["ome-zarr", "nnunet"]
    out: str | None = None
    mixture: str | None = None
    cases: list[str] | None = None
    ngff: Literal["0.4", "0.5"] = "0.5"
    overwrite: bool = True

    @model_validator(mode="after")
    def _valid(self) -> _ExportFields:
        if self.format == "nnunet" and self.cases:
            raise ConfigError("export nnunet writes a mixture's cases; cases= applies to ome-zarr only")
        self.nnunet_config()
        return self

    def nnunet_config(self) -> NnunetExportConfig:
        """The pipeline's NnunetExportConfig for these values (ConfigError on a bad value)."""
        return NnunetExportConfig(**{k: getattr(self, k) for k in NNUNET_FIELDS})


NNUNET_FIELDS = ("dataset_id", "name", "synthetic", "train_slices")

#: One export: ``format`` ome-zarr (every case, ``cases``, or a ``mixture``'s) or nnunet (a ``mixture``),
#: into ``out`` (default: ``<the flow's out>/<format>``); nnU-Net's fields as ``samdata export nnunet``'s.
ExportParams = create_model(
    "ExportParams",
    __base__=_ExportFields,
    __doc__="One export: format, output folder, the mixture or cases it writes, nnU-Net's dataset fields.",
    **model_fields(NnunetExportConfig, NNUNET_FIELDS),
)


@task(name="export", retries=IO_RETRIES, retry_delay_seconds=IO_RETRY_DELAY_S, cache_policy=NONE)
def export_task(store: str, params: ExportParams, out: str) -> list[str]:  # type: ignore[valid-type]
    """Write the export; the image folders (ome-zarr) or the dataset folder (nnunet)."""
    if params.format == "ome-zarr":
        from storage.omezarr import export_ome_zarr

        paths = export_ome_zarr(
            store, out, params.cases, None, params.mixture, version=params.ngff, overwrite=params.overwrite
        )
        return [str(p) for p in paths]
    from pipelines.nnunet import export_nnunet

    if not params.mixture:
        raise ConfigError("export nnunet needs mixture=<name>: it writes that mixture's train and test cases")
    return [str(export_nnunet(store, out, params.mixture, params.nnunet_config(), overwrite=params.overwrite))]


def export_markdown(store: str, params: Any, paths: list[str]) -> str:
    """The artifact of an export: format, what was read, and every path written."""
    cases = "cases " + ", ".join(params.cases) if params.cases else ""
    what = f"mixture `{params.mixture}`" if params.mixture else cases
    title = f"## Export `{params.format}` of `{store}`" + (f" ({what})" if what else "")
    how = (
        f"Open with napari: `napari --plugin napari-ome-zarr {paths[0]}`"
        if params.format == "ome-zarr" and paths
        else f"Run nnU-Net with `nnUNet_raw={Path(paths[0]).parent}`"
        if paths
        else "Nothing written."
    )
    return f"{title}\n\n{how}\n\n" + markdown_table(["written"], [[p] for p in paths])


@flow(name="export", validate_parameters=True)
def export_flow(store: str, export: ExportParams, out: str | None = None) -> dict[str, Any]:  # type: ignore[valid-type]
    """Write ``export`` of ``store`` into ``export.out`` (else ``out/<format>``) and publish the written
    paths as the artifact ``export-<folder>``."""
    target = export.out or (str(Path(out) / export.format) if out else None)
    if target is None:
        raise ConfigError("export: give export.out or the flow's out folder")
    paths = export_task(store, export, target)
    key = publish("export", target, export_markdown(store, export, paths), f"export {export.format} to {target}")
    get_run_logger().info(f"export {export.format}: {len(paths)} path(s) under {target} (artifact {key})")
    return {"format": export.format, "out": target, "paths": paths, "artifact": key}
