"""Label maps: value checks, storage dtype, and MedSAM-style removal of small objects.

Connected components come from ``scipy.ndimage.label`` (scikit-image is not installed, and
connected-components-3d would be a new dependency for two calls). Connectivity follows MedSAM's
``cc3d.dust`` calls: 26-connected in 3D, 8-connected within a slice.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from samdata.errors import ValidationError

MAX_LABEL = int(np.iinfo(np.uint16).max)

_STRUCTURE_3D = ndimage.generate_binary_structure(3, 3)  # 26-connected
_STRUCTURE_2D = np.zeros((3, 3, 3), dtype=bool)  # 8-connected in (Y, X), nothing across Z
_STRUCTURE_2D[1] = True


def label_dtype(max_label: int) -> np.dtype:
    """The storage dtype for labels up to `max_label`: uint8 up to 255, uint16 up to 65535."""
    if max_label < 0:
        raise ValidationError(f"label value {max_label} is negative; expected labels >= 0")
    if max_label <= np.iinfo(np.uint8).max:
        return np.dtype(np.uint8)
    if max_label <= MAX_LABEL:
        return np.dtype(np.uint16)
    raise ValidationError(f"label value {max_label} exceeds {MAX_LABEL}; expected labels that fit uint16")


def as_label_array(array: np.ndarray, *, path: str) -> np.ndarray:
    """Check a label array (any shape) holds finite integers >= 0 and cast it to :func:`label_dtype`."""
    arr = np.asarray(array)
    if arr.dtype == np.bool_:
        arr = arr.view(np.uint8)
    is_float = np.issubdtype(arr.dtype, np.floating)
    if not (is_float or np.issubdtype(arr.dtype, np.integer)):
        raise ValidationError(f"{path}: label dtype {arr.dtype} is not numeric; expected integer labels >= 0")
    if is_float:
        finite = np.isfinite(arr)
        if not finite.all():
            raise ValidationError(
                f"{path}: label map has {int(arr.size - finite.sum())} non-finite values (NaN/inf); "
                "expected integer labels >= 0"
            )
        fractional = arr != np.round(arr)
        if fractional.any():
            raise ValidationError(
                f"{path}: label map has non-integer value {float(arr[fractional][0])!r} "
                f"({int(fractional.sum())} voxels); expected integer labels >= 0"
            )
    if not arr.size:
        return arr.astype(np.uint8)
    low, high = arr.min(), arr.max()
    if low < 0:
        raise ValidationError(f"{path}: label map has negative value {low.item()!r}; expected labels >= 0")
    try:
        dtype = label_dtype(int(high))
    except ValidationError as err:
        raise ValidationError(f"{path}: {err}") from err
    return arr.astype(dtype, copy=False)


def _small_components(mask: np.ndarray, structure: np.ndarray, min_size: int) -> np.ndarray:
    """Boolean mask of the components of `mask` (given connectivity) with fewer than `min_size` voxels."""
    try:  # 16-bit component ids halve the largest temporary of an ingest (the organ's bounding box)
        components = np.empty(mask.shape, dtype=np.uint16)
        count = ndimage.label(mask, structure=structure, output=components)
    except RuntimeError:  # more than 65,535 components: scipy refuses the narrow type
        components, count = ndimage.label(mask, structure=structure)
    if count == 0:
        return np.zeros(mask.shape, dtype=bool)
    small = np.bincount(components.ravel()) < min_size
    small[0] = False
    if not small.any():  # the usual case: skip indexing the whole box
        return np.zeros(mask.shape, dtype=bool)
    return small[components]


def clean_labels(
    label_zyx: np.ndarray, *, min_object_voxels: int, min_object_pixels: int, copy: bool = True,
    boxes: list[tuple[slice, ...] | None] | None = None,
) -> tuple[np.ndarray, dict[str, int]]:
    """Drop small objects from a (Z, Y, X) integer label map, per label value (MedSAM).

    First 3D components (26-connected) with fewer than `min_object_voxels` voxels are removed,
    except in 2D images (Z == 1); then, slice by slice, 2D components (8-connected) with fewer
    than `min_object_pixels` pixels. Thresholds <= 1 disable a step. Returns the cleaned copy and
    the number of voxels set to 0 per label value (keys are the values as strings; labels that
    lost nothing are absent).

    ``copy=False`` cleans a C-contiguous ``label_zyx`` in place (the caller owns it); ``boxes`` is
    ``scipy.ndimage.find_objects(label_zyx)`` when the caller has it already (one pass over the map).
    """
    if label_zyx.ndim != 3 or not np.issubdtype(label_zyx.dtype, np.integer):
        raise ValidationError(
            f"label map of shape {label_zyx.shape} and dtype {label_zyx.dtype}; expected a (Z, Y, X) integer array"
        )
    if not copy and not label_zyx.flags.c_contiguous:
        raise ValidationError("clean_labels(copy=False) needs a C-contiguous label map")
    cleaned = label_zyx.copy() if copy else label_zyx
    dropped: dict[str, int] = {}
    use_3d = min_object_voxels > 1 and label_zyx.shape[0] > 1
    use_2d = min_object_pixels > 1
    if not (use_3d or use_2d):
        return cleaned, dropped
    for index, box in enumerate(ndimage.find_objects(cleaned) if boxes is None else boxes):
        if box is None:
            continue
        value = index + 1
        mask = cleaned[box] == value
        remove = np.zeros(mask.shape, dtype=bool)
        if use_3d:
            remove |= _small_components(mask, _STRUCTURE_3D, min_object_voxels)
        if use_2d:
            remove |= _small_components(mask & ~remove, _STRUCTURE_2D, min_object_pixels)
        if remove.any():
            cleaned[box][remove] = 0
            dropped[str(value)] = int(remove.sum())
    return cleaned, dropped
