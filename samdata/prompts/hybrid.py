"""Hybrid prompts: a box, points, or box plus points, drawn with set probabilities per object.

SlideSAM draws a point or a box with equal probability (the defaults). The box and points use the
``box`` and ``points`` schemes' keys, given here under ``box.`` and ``points.``
(e.g. ``hybrid:box=0.3,points=0.3,box+points=0.4,box.jitter=10,points.n=2``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from samdata.errors import ConfigError
from samdata.prompts.boxes import BoxParams, box_prompt
from samdata.prompts.points import PointsParams, point_prompt
from samdata.prompts.prompt import Prompt
from samdata.spec import check_float

HYBRID_KINDS: tuple[str, ...] = ("box", "points", "box+points")


@dataclass(frozen=True)
class HybridParams:
    """Keys of the ``hybrid`` scheme: probabilities of each kind (summing to 1) and their settings."""

    box: float = 0.5
    points: float = 0.5
    box_points: float = field(default=0.0, metadata={"key": "box+points"})
    box_params: BoxParams = field(default_factory=BoxParams, metadata={"key": "box"})
    points_params: PointsParams = field(default_factory=PointsParams, metadata={"key": "points"})

    def __post_init__(self) -> None:
        check_float("hybrid", "box", self.box, 0.0, 1.0)
        check_float("hybrid", "points", self.points, 0.0, 1.0)
        check_float("hybrid", "box+points", self.box_points, 0.0, 1.0)
        total = self.box + self.points + self.box_points
        if abs(total - 1.0) > 1e-6:
            raise ConfigError(
                f"prompt scheme 'hybrid': box={self.box}, points={self.points}, box+points={self.box_points} "
                f"sum to {total:g}; expected probabilities summing to 1"
            )
        if not isinstance(self.box_params, BoxParams) or not isinstance(self.points_params, PointsParams):
            raise ConfigError("prompt scheme 'hybrid': box_params must be BoxParams and points_params PointsParams")

    @property
    def probabilities(self) -> np.ndarray:
        """(3,) float64 probabilities of box, points, box+points (in :data:`HYBRID_KINDS` order)."""
        p = np.array([self.box, self.points, self.box_points], dtype=np.float64)
        return p / p.sum()


def hybrid_prompt(mask: np.ndarray, rng: np.random.Generator, params: HybridParams) -> Prompt:
    """A box, points, or both for a (Y, X) bool object mask, the kind drawn per ``params``."""
    kind = HYBRID_KINDS[int(rng.choice(len(HYBRID_KINDS), p=params.probabilities))]
    box = box_prompt(mask, rng, params.box_params).box if kind != "points" else None
    if kind == "box":
        return Prompt(box=box)
    points = point_prompt(mask, rng, params.points_params)
    return Prompt(box, points.points, points.point_labels)
