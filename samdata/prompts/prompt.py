"""The :class:`Prompt` record: one object's box, points and mask prompt, plus its flat row form.

Coordinates are slice pixel coordinates (see samdata/case.py): boxes ``(x0, y0, x1, y1)``
inclusive-exclusive, points ``(x, y)`` at pixel centres (the point ``(3, 5)`` is ``mask[5, 3]``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from samdata.errors import ValidationError
from samdata.prompts.frame import frame_shape

BOX_KEYS: tuple[str, str, str, str] = ("box_x0", "box_y0", "box_x1", "box_y1")
N_POINTS_KEY = "n_points"


def point_keys(index: int) -> tuple[str, str, str]:
    """Row keys of point ``index``: its x, y and label."""
    return (f"point{index}_x", f"point{index}_y", f"point{index}_label")


def _frozen(array: np.ndarray) -> np.ndarray:
    """Return a read-only copy of ``array``."""
    out = np.array(array, copy=True)
    out.setflags(write=False)
    return out


_NO_POINTS = _frozen(np.zeros((0, 2), np.float32))
_NO_LABELS = _frozen(np.zeros(0, np.int8))


@dataclass(frozen=True, eq=False)
class Prompt:
    """One object's prompt; any of box, points and mask may be absent (``None`` / zero points).

    ``box``: ``(x0, y0, x1, y1)`` ints, inclusive-exclusive, ``0 <= x0 < x1``, ``0 <= y0 < y1``.
    ``points``: (N, 2) float32 ``(x, y)``. ``point_labels``: (N,) int8, 1 = positive, 0 = negative.
    ``mask``: a mask prompt, (size, size) bool in the model frame or (Y, X) bool at full resolution
    (see :mod:`samdata.prompts.masks`); never stored in columns. Arrays are read-only copies.
    """

    box: tuple[int, int, int, int] | None = None
    points: np.ndarray = field(default_factory=lambda: _NO_POINTS)
    point_labels: np.ndarray = field(default_factory=lambda: _NO_LABELS)
    mask: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.box is not None:
            box = tuple(int(v) for v in self.box)
            if len(box) != 4 or not (0 <= box[0] < box[2] and 0 <= box[1] < box[3]):
                raise ValidationError(
                    f"prompt box {self.box} is not (x0, y0, x1, y1) with 0 <= x0 < x1 and 0 <= y0 < y1"
                )
            object.__setattr__(self, "box", box)
        if np.size(self.points) == 0 and np.size(self.point_labels) == 0:  # a box or mask prompt: shared empties
            object.__setattr__(self, "points", _NO_POINTS)
            object.__setattr__(self, "point_labels", _NO_LABELS)
            self._check_mask()
            return
        points = np.asarray(self.points, dtype=np.float32)
        if points.size == 0:
            points = points.reshape(0, 2)
        labels = np.asarray(self.point_labels).reshape(-1)
        if points.ndim != 2 or points.shape[1] != 2 or labels.shape[0] != points.shape[0]:
            raise ValidationError(
                f"prompt points {np.shape(self.points)} and labels {np.shape(self.point_labels)} do not "
                "match; expected (N, 2) points and (N,) labels"
            )
        if not np.isfinite(points).all() or not ((labels == 0) | (labels == 1)).all():
            raise ValidationError(f"prompt points must be finite with labels 0/1; got labels {labels.tolist()}")
        object.__setattr__(self, "points", _frozen(points))
        object.__setattr__(self, "point_labels", _frozen(labels.astype(np.int8)))
        self._check_mask()

    def _check_mask(self) -> None:
        if self.mask is not None:
            mask = np.asarray(self.mask)
            if mask.ndim != 2:
                raise ValidationError(f"prompt mask must be 2D (Y, X); got shape {mask.shape}")
            object.__setattr__(self, "mask", _frozen(mask))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Prompt):
            return NotImplemented
        same_mask = (self.mask is None and other.mask is None) or (
            self.mask is not None
            and other.mask is not None
            and self.mask.dtype == other.mask.dtype
            and np.array_equal(self.mask, other.mask)
        )
        return (
            self.box == other.box
            and np.array_equal(self.points, other.points)
            and np.array_equal(self.point_labels, other.point_labels)
            and same_mask
        )

    __hash__ = None  # type: ignore[assignment]  # holds arrays

    def __reduce__(self) -> tuple[type, tuple[Any, ...]]:
        """Pickle through the constructor, so unpickled arrays are read-only and checked again."""
        return (Prompt, (self.box, self.points, self.point_labels, self.mask))

    @property
    def n_points(self) -> int:
        """Number of points (positive and negative)."""
        return int(self.points.shape[0])

    def scaled(self, sx: float, sy: float, offset: tuple[float, float] = (0.0, 0.0)) -> Prompt:
        """Map the prompt through ``x' = x * sx + ox`` (pixel edges), as a resize by (sx, sy) then a shift.

        Box edges map exactly and are rounded outward (floor x0/y0, ceil x1/y1) so the box still holds
        the object; points are pixel centres, mapped as ``(x + 0.5) * sx - 0.5 + ox``. The mask
        prompt is carried over unchanged (it is produced in the model frame already).
        """
        if sx <= 0 or sy <= 0:
            raise ValidationError(f"prompt scale factors must be positive; got sx={sx}, sy={sy}")
        ox, oy = float(offset[0]), float(offset[1])
        box = None
        if self.box is not None:
            x0, y0, x1, y1 = self.box
            box = (
                max(0, math.floor(x0 * sx + ox + 1e-9)),
                max(0, math.floor(y0 * sy + oy + 1e-9)),
                math.ceil(x1 * sx + ox - 1e-9),
                math.ceil(y1 * sy + oy - 1e-9),
            )
        scale = np.array([sx, sy], dtype=np.float64)
        points = (self.points.astype(np.float64) + 0.5) * scale - 0.5 + np.array([ox, oy])
        return Prompt(box, points.astype(np.float32), self.point_labels, self.mask)

    def mirrored(self, shape: tuple[int, int], x: bool = False, y: bool = False) -> Prompt:
        """The prompt of the same object after its (Y, X) image of ``shape`` is flipped left-right (``x``)
        and/or up-down (``y``): box edges map as ``w - x`` (so ``(x0, x1)`` becomes ``(w - x1, w - x0)``),
        points as pixel centres ``w - 1 - x``; a mask prompt is flipped in its top-left ``shape`` part (a
        model-frame mask keeps its padding at bottom/right). A box beyond the image is clipped to it first."""
        height, width = int(shape[0]), int(shape[1])
        if height < 1 or width < 1:
            raise ValidationError(f"mirrored needs a positive image shape; got {shape}")
        box = self.box
        if box is not None:
            x0, y0, x1, y1 = min(box[0], width - 1), min(box[1], height - 1), min(box[2], width), min(box[3], height)
            if x:
                x0, x1 = width - x1, width - x0
            if y:
                y0, y1 = height - y1, height - y0
            box = (x0, y0, x1, y1)
        points = self.points.astype(np.float64, copy=True)
        if x:
            points[:, 0] = width - 1 - points[:, 0]
        if y:
            points[:, 1] = height - 1 - points[:, 1]
        mask = self.mask
        if mask is not None and (x or y):
            if mask.shape[0] < height or mask.shape[1] < width:
                raise ValidationError(f"mask prompt of shape {mask.shape} is smaller than the image {shape}")
            mask = np.array(mask, copy=True)
            part = mask[:height, :width]
            mask[:height, :width] = part[:: -1 if y else 1, :: -1 if x else 1]
        return Prompt(box, points.astype(np.float32), self.point_labels, mask)

    def to_frame(self, shape: tuple[int, int], target: int) -> Prompt:
        """Map a prompt on a (Y, X) slice into the model frame (longest side resized to ``target``)."""
        new_h, new_w = frame_shape(shape, target)
        out = self.scaled(new_w / shape[1], new_h / shape[0])
        if out.box is None:
            return out
        x0, y0, x1, y1 = out.box
        box = (min(x0, new_w - 1), min(y0, new_h - 1), min(max(x1, x0 + 1), new_w), min(max(y1, y0 + 1), new_h))
        return Prompt(box, out.points, out.point_labels, out.mask)

    def to_row(self, max_points: int) -> dict[str, int | float]:
        """Flatten to fixed scalar keys: box (-1 when absent), ``n_points``, then ``max_points`` points
        padded with NaN coordinates and label -1. The mask is not part of the row."""
        if self.n_points > max_points:
            raise ValidationError(f"prompt has {self.n_points} points; the row holds at most {max_points}")
        box = self.box if self.box is not None else (-1, -1, -1, -1)
        row: dict[str, int | float] = dict(zip(BOX_KEYS, box, strict=True))
        row[N_POINTS_KEY] = self.n_points
        for i in range(max_points):
            kx, ky, kl = point_keys(i)
            if i < self.n_points:
                row[kx], row[ky] = float(self.points[i, 0]), float(self.points[i, 1])
                row[kl] = int(self.point_labels[i])
            else:
                row[kx], row[ky], row[kl] = math.nan, math.nan, -1
        return row

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Prompt:
        """Rebuild a prompt (without mask) from :meth:`to_row` output."""
        try:
            box_values = tuple(int(row[k]) for k in BOX_KEYS)
            n_points = int(row[N_POINTS_KEY])
            pts = [(float(row[point_keys(i)[0]]), float(row[point_keys(i)[1]])) for i in range(n_points)]
            labels = [int(row[point_keys(i)[2]]) for i in range(n_points)]
        except KeyError as err:
            raise ValidationError(f"prompt row lacks key {err.args[0]!r}; has {sorted(row)}") from err
        box = None if box_values == (-1, -1, -1, -1) else box_values  # Prompt validates it
        points = np.array(pts, dtype=np.float32).reshape(-1, 2)
        return cls(box, points, np.array(labels, dtype=np.int8))  # type: ignore[arg-type]
