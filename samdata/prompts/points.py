"""Point prompts: positives in the object, negatives in the background around it.

Positives: ``mode=uniform`` draws ``n`` distinct object pixels uniformly (Med-SA, SlideSAM);
``mode=interior`` places one point at the object's most interior pixel (distance-transform maximum,
image border counted as boundary). Negatives (``neg`` of them, distinct): ``neg_mode=ring`` draws from
background pixels within ``ring`` px of the object, falling back to a ``ring``-px band outside the
tight box (as micro-sam does), then to the whole background when a band has too few pixels;
``neg_mode=background`` draws from the whole background. Positives come first in the arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from samdata.errors import ConfigError
from samdata.prompts.prompt import Prompt
from samdata.prompts.regions import box_ring, interior_point, object_mask, ring, sample_pixels, tight_box
from samdata.spec import check_choice, check_int

PointMode = Literal["uniform", "interior"]
NegMode = Literal["ring", "background"]
POINT_MODES: tuple[str, ...] = ("uniform", "interior")
NEG_MODES: tuple[str, ...] = ("ring", "background")


@dataclass(frozen=True)
class PointsParams:
    """Keys of the ``points`` scheme: positive count and placement, negative count and placement."""

    n: int = 1
    neg: int = 0
    mode: PointMode = "uniform"
    neg_mode: NegMode = "ring"
    ring: int = 5

    def __post_init__(self) -> None:
        check_int("points", "n", self.n, 1)
        check_int("points", "neg", self.neg, 0)
        check_choice("points", "mode", self.mode, POINT_MODES)
        check_choice("points", "neg_mode", self.neg_mode, NEG_MODES)
        check_int("points", "ring", self.ring, 1)
        if self.mode == "interior" and self.n != 1:
            raise ConfigError(f"prompt scheme 'points': mode=interior places one positive point; got n={self.n}")


def positive_points(obj: np.ndarray, rng: np.random.Generator, params: PointsParams) -> np.ndarray:
    """(n, 2) float32 positive points in a (Y, X) bool object per ``params``."""
    if params.mode == "interior":
        return interior_point(obj)
    return sample_pixels(obj, params.n, rng, f"points:n={params.n} (object pixels)")


def negative_points(obj: np.ndarray, rng: np.random.Generator, params: PointsParams) -> np.ndarray:
    """(neg, 2) float32 negative points in the background of a (Y, X) bool object per ``params``."""
    if params.neg == 0:
        return np.zeros((0, 2), np.float32)
    background = ~obj
    if params.neg_mode == "ring":
        for region in (ring(obj, params.ring), box_ring(tight_box(obj), obj.shape, params.ring)):
            if region.sum() >= params.neg:
                background = region
                break
    return sample_pixels(background, params.neg, rng, f"points:neg={params.neg} (background pixels)")


def point_prompt(mask: np.ndarray, rng: np.random.Generator, params: PointsParams) -> Prompt:
    """Positive then negative point prompts for a (Y, X) bool object mask."""
    obj = object_mask(mask, "points")
    pos = positive_points(obj, rng, params)
    neg = negative_points(obj, rng, params)
    labels = np.concatenate([np.ones(len(pos), np.int8), np.zeros(len(neg), np.int8)])
    return Prompt(points=np.concatenate([pos, neg]), point_labels=labels)
