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
    if arr.dtype == np.uint8:  # already a valid label map: no pass over it
        return arr
    low, high = arr.min(), arr.max()
    if low < 0:
        raise ValidationError(f"{path}: label map has negative value {low.item()!r}; expected labels >= 0")
    try:
        dtype = label_dtype(int(high))
    except ValidationError as err:
        raise ValidationError(f"{path}: {err}") from err
    return arr.astype(dtype, copy=False)


def label_boxes(label_zyx: np.ndarray) -> list[tuple[slice, ...] | None]:
    """``scipy.ndimage.find_objects`` of a (Z, Y, X) label map, scanning only its labelled extent.

    find_objects holds the GIL and walks every voxel (BENCHMARKS.md, "Ingest"); the extent comes from
    two numpy reductions that release it (a slice's labelled rows, then the columns within them), and
    organs fill a fraction of a CT volume (a third for the benchmark's phantoms)."""
    rows = label_zyx.any(axis=2)  # (Z, Y)
    zs, ys = np.flatnonzero(rows.any(axis=1)), np.flatnonzero(rows.any(axis=0))
    if not zs.size:
        return []
    z0, z1, y0, y1 = int(zs[0]), int(zs[-1]) + 1, int(ys[0]), int(ys[-1]) + 1
    xs = np.flatnonzero(label_zyx[z0:z1, y0:y1].any(axis=(0, 1)))
    x0, x1 = int(xs[0]), int(xs[-1]) + 1
    inner = ndimage.find_objects(label_zyx[z0:z1, y0:y1, x0:x1])
    return [
        None if box is None else tuple(slice(s.start + o, s.stop + o) for s, o in zip(box, (z0, y0, x0)))
        for box in inner
    ]


def _small_components(mask: np.ndarray, structure: np.ndarray, min_size: int) -> np.ndarray | None:
    """Boolean mask of the components of `mask` (given connectivity) with fewer than `min_size` voxels,
    or None when there are none (the usual case: no volume-sized result)."""
    try:  # 16-bit component ids halve the largest temporary of an ingest (the organ's bounding box)
        components = np.empty(mask.shape, dtype=np.uint16)
        count = ndimage.label(mask, structure=structure, output=components)
    except RuntimeError:  # more than 65,535 components: scipy refuses the narrow type
        components, count = ndimage.label(mask, structure=structure)
    if count == 0:
        return None
    small = np.bincount(components.ravel()) < min_size
    small[0] = False
    if not small.any():
        return None
    return small[components]


def clean_labels(
    label_zyx: np.ndarray,
    *,
    min_object_voxels: int,
    min_object_pixels: int,
    copy: bool = True,
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
    for index, box in enumerate(label_boxes(cleaned) if boxes is None else boxes):
        if box is None:
            continue
        value = index + 1
        mask = cleaned[box] == value  # the only box-sized temporaries: this, the component ids and `small`
        removed = 0
        for used, structure, min_size in (
            (use_3d, _STRUCTURE_3D, min_object_voxels),
            (use_2d, _STRUCTURE_2D, min_object_pixels),
        ):
            small = _small_components(mask, structure, min_size) if used else None
            if small is not None:
                cleaned[box][small] = 0
                mask[small] = False  # the 2D rule sees what the 3D rule kept
                removed += int(np.count_nonzero(small))
                del small
        if removed:
            dropped[str(value)] = removed
    return cleaned, dropped
