"""Mask prompts: the ground-truth mask degraded by erosion, dilation or a shift, as SAM's mask input.

``op``: ``erode`` / ``dilate`` by a Euclidean disc of ``px`` px (the image border is not a boundary,
so objects touching it do not erode from it); ``shift`` moves the mask ``px`` px in a random direction
(zero fill); ``any`` picks one of the three uniformly. ``size > 0`` returns the mask in the model
frame, i.e. resized like the image (longest side to ``size``, zero pad at bottom/right, see
:mod:`samdata.prompts.frame`) as (size, size) bool: SAM's mask input is 256x256 for a 1024 input
and LiteMedSAM's for its 256 input, hence the default 256. ``size=0`` returns (Y, X) bool at the
slice's resolution. Convert to logits in the model code (e.g. ``where(m, 8, -8)``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import ndimage

from samdata.errors import ValidationError
from samdata.prompts.frame import mask_to_frame
from samdata.prompts.prompt import Prompt
from samdata.prompts.regions import distance_outside, object_mask, window
from samdata.spec import check_choice, check_int

MaskOp = Literal["erode", "dilate", "shift", "any"]
MASK_OPS: tuple[str, ...] = ("erode", "dilate", "shift", "any")


@dataclass(frozen=True)
class MaskParams:
    """Keys of the ``mask`` scheme: degradation ``op``, its size ``px``, output ``size`` (0 = full res)."""

    op: MaskOp = "any"
    px: int = 3
    size: int = 256

    def __post_init__(self) -> None:
        check_choice("mask", "op", self.op, MASK_OPS)
        check_int("mask", "px", self.px, 0)
        check_int("mask", "size", self.size, 0)


def shift_mask(mask: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """Shift a (Y, X) bool mask by (dx, dy) px with zero fill."""
    out = np.zeros_like(mask)
    height, width = mask.shape
    src = mask[max(0, -dy) : height - max(0, dy), max(0, -dx) : width - max(0, dx)]
    out[max(0, dy) : max(0, dy) + src.shape[0], max(0, dx) : max(0, dx) + src.shape[1]] = src
    return out


def degrade_mask(obj: np.ndarray, rng: np.random.Generator, op: str, px: int) -> np.ndarray:
    """Erode, dilate or shift a non-empty (Y, X) bool object mask by ``px`` px: (Y, X) bool."""
    if op == "any":
        op = ("erode", "dilate", "shift")[int(rng.integers(3))]
    if op == "erode":
        rows, cols = window(obj, 1)
        out = obj.copy()
        if (~obj[rows, cols]).any():  # else the object fills the image: nothing to erode from
            out[rows, cols] = ndimage.distance_transform_edt(obj[rows, cols]) > px
    elif op == "dilate":
        out = distance_outside(obj, px) <= px
    else:
        angle = rng.uniform(0.0, 2.0 * np.pi)
        out = shift_mask(obj, int(np.rint(px * np.cos(angle))), int(np.rint(px * np.sin(angle))))
    if not out.any():
        raise ValidationError(
            f"mask:op={op},px={px} leaves no object pixels; the object has {int(obj.sum())} pixels "
            f"(mask {obj.shape[0]}x{obj.shape[1]}), too thin or too close to the border for it"
        )
    return out


def mask_prompt(mask: np.ndarray, rng: np.random.Generator, params: MaskParams) -> Prompt:
    """A degraded-mask prompt for a (Y, X) bool object mask (see the module docstring for the frame)."""
    obj = object_mask(mask, "mask")
    degraded = degrade_mask(obj, rng, params.op, params.px)
    if not params.size:
        return Prompt(mask=degraded)
    framed = mask_to_frame(degraded, params.size)
    if not framed.any():
        raise ValidationError(
            f"mask:size={params.size}: the degraded object ({int(degraded.sum())} pixels in a "
            f"{obj.shape[0]}x{obj.shape[1]} mask) vanishes when resized to the model frame"
        )
    return Prompt(mask=framed)
