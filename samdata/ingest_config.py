"""How a read volume becomes a stored case (:class:`IngestConfig`), apart from the array code of
:mod:`samdata.normalise` that applies it, so that the CLI and the flows read it without numpy or scipy."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from samdata.config import Count, Int, Weight, config
from samdata.errors import ConfigError

#: default voxel budget of a case's image or label file: 2**29 voxels (a 512 x 512 x 2048 CT)
DEFAULT_MAX_VOXELS = 1 << 29

Percent = Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)]  # a percentile, 0..100
Millimetres = Annotated[float, Field(gt=0, allow_inf_nan=False)]  # a voxel side, finite and > 0


@config
class IngestConfig:
    """How a read volume becomes a stored case.

    ``modality``: forces the modality; ``None`` takes, in order, the modality declared by the
    caller (e.g. from dataset.json), the reader's ``Volume.meta["modality"]`` (e.g. a DICOM tag),
    else guesses ``"CT"`` when the minimum value is below -500 (HU air) and ``"OTHER"`` otherwise.
    ``window``: preset name from :data:`WINDOWS` or ``(level, width)``; CT defaults to
    ``"abdomen"``; an explicit window is applied to any modality. ``percentiles``: low/high
    percentiles of the non-zero voxels used for every non-CT modality without a window.
    ``spacing``: target (X, Y, Z) mm of the canonical grid, ``None`` keeps the source spacing.
    ``min_object_voxels`` / ``min_object_pixels``: smaller 3D / per-slice 2D label components are
    dropped (MedSAM; the 3D rule is skipped for 2D images). ``image_order``: spline order used to
    resample images (labels always use 0). ``keep_uint8``: non-CT uint8 images without an explicit
    window are stored unchanged (already display-ready, as MedSAM does for 2D images).
    ``affine_tolerance``: largest element-wise difference allowed between image and label affines.
    ``max_voxels``: a case whose image or label file declares more voxels fails before it is decoded.
    """

    modality: Annotated[str | None, Field(description="CT, MR, US, ... (default: dataset.json's, else a guess)")] = None
    window: Annotated[
        str | tuple[float, float] | None,
        Field(description="CT window: abdomen|brain|bone|lung|liver|mediastinum or level,width in HU"),
    ] = None
    percentiles: tuple[Percent, Percent] = (0.5, 99.5)
    spacing: Annotated[
        tuple[Millimetres, Millimetres, Millimetres] | None,
        Field(description="Resample to X,Y,Z mm (default: keep the source spacing)"),
    ] = None
    min_object_voxels: Annotated[Count, Field(description="Drop 3D objects smaller than this (voxels)")] = 1000
    min_object_pixels: Annotated[Count, Field(description="Drop 2D objects smaller than this (pixels per slice)")] = 100
    image_order: Annotated[Int, Field(ge=0, le=5, description="a spline order")] = 1
    keep_uint8: bool = True
    affine_tolerance: Weight = 1e-3
    max_voxels: Annotated[
        Int,
        Field(
            ge=1,
            description="Refuse a case whose image or label declares more voxels, "
            "checked on the headers before decoding",
        ),
    ] = DEFAULT_MAX_VOXELS

    def __post_init__(self) -> None:
        from samdata.normalise import canonical_modality, resolve_window  # numpy, nibabel, scipy: not at import

        if self.modality is not None:
            canonical_modality(self.modality)
        if self.window is not None:
            resolve_window(self.window)
        if not self.percentiles[0] < self.percentiles[1]:
            raise ConfigError(f"percentiles {self.percentiles!r}: expected 0 <= low < high <= 100")
