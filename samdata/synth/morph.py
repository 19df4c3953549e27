"""Registration of two labelled slices' label maps, for in-between morphs (SimpleITK diffeomorphic demons).

Each label map is turned into a smooth scalar image (every label at its own level, the mean real
intensity of that label, so neighbouring tissues differ as they do in the image) and registered
coarse to fine (shrink 4, 2, 1) with ITK's diffeomorphic demons. The result is a displacement
field ``u`` in pixels with ``moving(x + u(x)) ≈ fixed(x)``; warping the moving slice by ``t · u``
moves its anatomy part of the way towards the fixed slice (Lee, Sabuncu & Dalca 2019 draw new
shapes from few atlases the same way).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from samdata.errors import ValidationError


@dataclass(frozen=True)
class DemonsConfig:
    """Demons settings: shrink factors coarse→fine, iterations per level, field smoothing (pixels)."""

    shrink: tuple[int, ...] = (4, 2, 1)
    iterations: tuple[int, ...] = (150, 80, 40)
    smoothing: float = 1.5
    label_blur: float = 1.0


def label_levels(images: np.ndarray, label_maps: np.ndarray, values: tuple[int, ...]) -> dict[int, float]:
    """Mean intensity in [0, 1] of each label value over (N, H, W) uint8 images and label maps (0 if absent)."""
    levels = {}
    for value in values:
        inside = label_maps == value
        levels[value] = float(images[inside].mean() / 255.0) if inside.any() else 0.0
    return levels


def level_image(label_map: np.ndarray, levels: dict[int, float], blur: float) -> sitk.Image:
    """A (H, W) label map as a float32 SimpleITK image: each label at its level, Gaussian-blurred (pixels)."""
    lookup = np.zeros(int(label_map.max()) + 1, dtype=np.float32)
    for value, level in levels.items():
        if value < len(lookup):
            lookup[value] = level
    image = sitk.GetImageFromArray(lookup[label_map])
    return sitk.SmoothingRecursiveGaussian(image, blur) if blur > 0 else image


def register(
    fixed: np.ndarray, moving: np.ndarray, levels: dict[int, float], config: DemonsConfig = DemonsConfig()
) -> np.ndarray:
    """Displacement (2, H, W) float32 in pixels (dx, dy) taking (H, W) label map ``moving`` onto ``fixed``:
    ``moving(x + u(x)) ≈ fixed(x)``."""
    if fixed.shape != moving.shape or fixed.ndim != 2:
        raise ValidationError(
            f"morph registration needs two label maps on one (H, W) grid; got {fixed.shape} and {moving.shape}"
        )
    if len(config.shrink) != len(config.iterations):
        raise ValidationError(f"demons shrink {config.shrink} and iterations {config.iterations} differ in length")
    fixed_img, moving_img = (
        level_image(fixed, levels, config.label_blur),
        level_image(moving, levels, config.label_blur),
    )
    field: sitk.Image | None = None
    for shrink, iterations in zip(config.shrink, config.iterations):
        f = sitk.Shrink(fixed_img, [shrink] * 2) if shrink > 1 else fixed_img
        m = sitk.Shrink(moving_img, [shrink] * 2) if shrink > 1 else moving_img
        demons = sitk.DiffeomorphicDemonsRegistrationFilter()
        demons.SetNumberOfIterations(int(iterations))
        demons.SetSmoothDisplacementField(True)
        demons.SetStandardDeviations(config.smoothing)
        demons.SetUseImageSpacing(True)
        if field is None:
            field = demons.Execute(f, m)
        else:
            start = sitk.Resample(field, f, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkVectorFloat64)
            field = demons.Execute(f, m, start)
    assert field is not None
    if tuple(field.GetSize()) != fixed.shape[::-1]:
        field = sitk.Resample(field, fixed_img, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkVectorFloat64)
    return np.moveaxis(sitk.GetArrayFromImage(field), -1, 0).astype(np.float32)
