"""Hybrid prompts: box, points or both, drawn with the set probabilities."""

from __future__ import annotations

import numpy as np

from samdata.prompts import HybridParams, PointsParams, PromptScheme
from tests.samdata.prompts.shapes import blob


def test_hybrid_draws_kinds_with_set_probabilities() -> None:
    mask = blob(64, 64, 30, 30, 10, 14, ellipse=True)
    scheme = PromptScheme("hybrid", HybridParams(box=0.2, points=0.3, box_points=0.5, points_params=PointsParams(n=2)))
    rng = np.random.default_rng(1)
    counts = {"box": 0, "points": 0, "box+points": 0}
    for _ in range(600):
        prompt = scheme(mask, rng)
        has_box, has_points = prompt.box is not None, prompt.n_points == 2
        assert has_box or has_points
        counts["box+points" if has_box and has_points else "box" if has_box else "points"] += 1
    assert abs(counts["box"] / 600 - 0.2) < 0.06 and abs(counts["points"] / 600 - 0.3) < 0.06
    assert abs(counts["box+points"] / 600 - 0.5) < 0.06
