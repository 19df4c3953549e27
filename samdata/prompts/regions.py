"""Object geometry the prompt schemes share: mask checks, tight box, rings, interior and nearest pixels.

Built on ``scipy.ndimage.distance_transform_edt``; the prompt-specific pieces (rings, snapping a
point to the nearest allowed pixel) are a few lines each and exist in no library without torch.
Pixel lists are ``(N, 2)`` ``(x, y)``, in row-major order of the mask.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from samdata.errors import ValidationError


def object_mask(mask: np.ndarray, scheme: str) -> np.ndarray:
    """Check a (Y, X) object mask (bool, or numbers with nonzero = object) and return it as bool."""
    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise ValidationError(f"prompt scheme {scheme!r} needs a 2D (Y, X) object mask; got shape {arr.shape}")
    if arr.dtype != bool:
        if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
            raise ValidationError(f"prompt scheme {scheme!r} needs a bool or numeric mask; got dtype {arr.dtype}")
        arr = arr != 0
    if not arr.any():
        raise ValidationError(
            f"prompt scheme {scheme!r} needs a non-empty object; got 0 object pixels in a "
            f"{arr.shape[0]}x{arr.shape[1]} mask"
        )
    return arr


def require_pixels(region: np.ndarray, count: int, what: str) -> None:
    """Raise ValidationError unless ``region`` (Y, X) bool has at least ``count`` pixels."""
    have = int(region.sum())
    if have < count:
        raise ValidationError(
            f"{what} needs at least {count} pixels; the region has {have} (mask {region.shape[0]}x{region.shape[1]})"
        )


def tight_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """Tight ``(x0, y0, x1, y1)`` inclusive-exclusive box of a non-empty (Y, X) bool mask (ValidationError if empty)."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        raise ValidationError(
            f"a tight box needs a non-empty mask; got 0 object pixels in a {mask.shape[0]}x{mask.shape[1]} mask"
        )
    y0, y1 = int(rows[0]), int(rows[-1]) + 1
    cols = np.flatnonzero(mask[y0:y1].any(axis=0))  # columns only within the object's rows
    return int(cols[0]), y0, int(cols[-1]) + 1, y1


def pixels_xy(region: np.ndarray) -> np.ndarray:
    """(N, 2) int64 ``(x, y)`` of the True pixels of a (Y, X) bool region."""
    ys, xs = np.nonzero(region)
    return np.stack([xs, ys], axis=1)


def sample_pixels(region: np.ndarray, count: int, rng: np.random.Generator, what: str) -> np.ndarray:
    """``count`` distinct pixels drawn uniformly from a (Y, X) bool region: (count, 2) float32 (x, y)."""
    require_pixels(region, count, what)
    xy = pixels_xy(region)
    return xy[rng.choice(len(xy), size=count, replace=False)].astype(np.float32)


def window(region: np.ndarray, margin: int) -> tuple[slice, slice]:
    """(rows, cols) slices of a non-empty region's tight box grown by ``margin`` px, clipped to the image.

    Distance work is done inside such windows: every quantity used here (rings, depths, erosion,
    dilation) only involves pixels within the margin of the region, so the results are exact.
    """
    x0, y0, x1, y1 = tight_box(region)
    height, width = region.shape
    return (slice(max(0, y0 - margin), min(height, y1 + margin)), slice(max(0, x0 - margin), min(width, x1 + margin)))


def _depth_map(region: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Distance of each pixel of a non-empty region to its nearest non-region pixel (the image border
    counts as one), over the region's tight box: (distances, x offset, y offset)."""
    rows, cols = window(region, 0)
    padded = np.pad(region[rows, cols], 1, constant_values=False)
    return ndimage.distance_transform_edt(padded)[1:-1, 1:-1], cols.start, rows.start


def depth(region: np.ndarray) -> float:
    """Radius of the largest disc inside a (Y, X) bool region (its distance-transform maximum); 0 if empty."""
    return float(_depth_map(region)[0].max()) if region.any() else 0.0


def interior_point(region: np.ndarray) -> np.ndarray:
    """The most interior pixel of a non-empty (Y, X) bool region: (1, 2) float32 (x, y).

    Of the pixels at the distance-transform maximum (a plateau for elongated shapes), the one nearest
    the plateau's mean, so a rectangle gets its centre rather than the plateau's first pixel.
    """
    dist, ox, oy = _depth_map(region)
    top = pixels_xy(dist >= dist.max() - 1e-9).astype(np.float64)
    best = int(np.argmin(((top - top.mean(axis=0)) ** 2).sum(axis=1)))
    return (top[best : best + 1] + (ox, oy)).astype(np.float32)


def distance_outside(mask: np.ndarray, reach: int) -> np.ndarray:
    """Distance of each background pixel to a non-empty (Y, X) bool object, exact up to ``reach`` px
    (pixels farther away get a value > ``reach``): (Y, X) float64, 0 on the object."""
    rows, cols = window(mask, reach + 1)
    out = np.full(mask.shape, np.inf)
    out[rows, cols] = ndimage.distance_transform_edt(~mask[rows, cols])
    return out


def ring(mask: np.ndarray, width: int) -> np.ndarray:
    """Background pixels within ``width`` px (Euclidean) of a (Y, X) bool object: (Y, X) bool."""
    return (distance_outside(mask, width) <= width) & ~mask


def box_ring(box: tuple[int, int, int, int], shape: tuple[int, int], width: int) -> np.ndarray:
    """Pixels outside ``box`` but within ``width`` px of it (Chebyshev), clipped to ``shape``: bool."""
    x0, y0, x1, y1 = box
    out = np.zeros(shape, dtype=bool)
    out[max(0, y0 - width) : y1 + width, max(0, x0 - width) : x1 + width] = True
    out[y0:y1, x0:x1] = False
    return out


def pixel_index(points: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Round (N, 2) (x, y) points to the nearest pixel inside a (Y, X) image: (xs, ys) int64 arrays."""
    xs = np.clip(np.rint(points[:, 0]), 0, shape[1] - 1).astype(np.int64)
    ys = np.clip(np.rint(points[:, 1]), 0, shape[0] - 1).astype(np.int64)
    return xs, ys


def nearest_in(region: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Round (N, 2) (x, y) points to pixels inside the image, then move each that is not in the
    non-empty (Y, X) bool ``region`` to its nearest region pixel (first in row-major order on ties):
    (N, 2) float32. A direct search, since N is a handful of clicks."""
    xs, ys = pixel_index(points, region.shape)
    out = np.stack([xs, ys], axis=1)
    outside = ~region[ys, xs]
    if outside.any():
        candidates = pixels_xy(region)
        assert len(candidates), "nearest_in needs a non-empty region"
        for i in np.flatnonzero(outside):
            out[i] = candidates[int(np.argmin(((candidates - out[i]) ** 2).sum(axis=1)))]
    return out.astype(np.float32)
