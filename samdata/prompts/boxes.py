"""Box prompts: the object's tight box with edge jitter, always clipped to the image.

Modes (one random draw per edge, in the order x0, y0, x1, y1):

* ``fixed`` (MedSAM): each edge moves outward by a uniform integer 0..``jitter`` px
  (MedSAM uses 20 px at 1024, LiteMedSAM 5 px at 256).
* ``relative`` (micro-sam): each edge moves outward by ``round(U(0, frac) * side)`` px, the side
  being the tight box's width for x edges and height for y edges.
* ``gauss`` (SlideSAM): each edge shifts by ``round(N(0, sigma * side))`` px capped to ``±cap``,
  inward or outward; an edge never crosses the tight box's middle pixel, so the box stays
  non-empty and on the object.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from samdata.prompts.prompt import Prompt
from samdata.prompts.regions import object_mask, tight_box
from samdata.spec import check_choice, check_float, check_int

BoxMode = Literal["fixed", "relative", "gauss"]
BOX_MODES: tuple[str, ...] = ("fixed", "relative", "gauss")


@dataclass(frozen=True)
class BoxParams:
    """Keys of the ``box`` scheme: jitter mode and its size (only the chosen mode's keys matter)."""

    mode: BoxMode = "fixed"
    jitter: int = 5
    frac: float = 0.025
    sigma: float = 0.01
    cap: int = 20

    def __post_init__(self) -> None:
        check_choice("box", "mode", self.mode, BOX_MODES)
        check_int("box", "jitter", self.jitter, 0)
        check_float("box", "frac", self.frac, 0.0, 1.0)
        check_float("box", "sigma", self.sigma, 0.0, 1.0)
        check_int("box", "cap", self.cap, 0)


def clip_box(box: tuple[int, int, int, int], shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """Clip an ``(x0, y0, x1, y1)`` box to a (Y, X) image, keeping at least one pixel."""
    height, width = shape
    x0 = min(max(box[0], 0), width - 1)
    y0 = min(max(box[1], 0), height - 1)
    x1 = min(max(box[2], x0 + 1), width)
    y1 = min(max(box[3], y0 + 1), height)
    return x0, y0, x1, y1


def jitter_box(
    tight: tuple[int, int, int, int], shape: tuple[int, int], rng: np.random.Generator, params: BoxParams
) -> tuple[int, int, int, int]:
    """Jitter a tight box per ``params`` and clip it to the (Y, X) image ``shape``."""
    x0, y0, x1, y1 = tight
    if params.mode == "fixed":  # the default, drawn once per training item: plain ints, same draws
        d0, d1, d2, d3 = rng.integers(0, params.jitter + 1, size=4).tolist()
        shift = [-d0, -d1, d2, d3]
    else:
        sides = np.array([x1 - x0, y1 - y0, x1 - x0, y1 - y0], dtype=np.float64)
        if params.mode == "relative":
            outward = np.array([-1, -1, 1, 1])
            moved = outward * np.rint(rng.uniform(0.0, params.frac, size=4) * sides).astype(np.int64)
        else:
            normal = rng.normal(0.0, 1.0, size=4) * params.sigma * sides
            moved = np.rint(np.clip(normal, -params.cap, params.cap)).astype(np.int64)
        shift = [int(v) for v in moved]
    mid_x, mid_y = x0 + (x1 - x0 - 1) // 2, y0 + (y1 - y0 - 1) // 2
    moved_box = (
        min(x0 + shift[0], mid_x),
        min(y0 + shift[1], mid_y),
        max(x1 + shift[2], mid_x + 1),
        max(y1 + shift[3], mid_y + 1),
    )
    return clip_box(moved_box, shape)


def box_prompt(mask: np.ndarray, rng: np.random.Generator, params: BoxParams) -> Prompt:
    """A jittered box prompt for a (Y, X) bool object mask."""
    obj = object_mask(mask, "box")
    return Prompt(box=jitter_box(tight_box(obj), obj.shape, rng, params))
