"""Point prompts: positives inside the object, negatives outside, the interior point at the deepest pixel."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import ndimage

from samdata.errors import ValidationError
from samdata.prompts import PointsParams, PromptScheme, parse_scheme
from tests.samdata.prompts.shapes import FAST, SEEDS, blob, blobs, inside, padded_edt


@FAST
@given(blobs(), SEEDS, st.integers(1, 4), st.integers(0, 3), st.sampled_from(["ring", "background"]))
def test_points_positive_inside_negative_outside(mask: np.ndarray, seed: int, n: int, neg: int, neg_mode: str) -> None:
    scheme = PromptScheme("points", PointsParams(n=n, neg=neg, neg_mode=neg_mode, ring=4))
    if (~mask).sum() < neg or mask.sum() < n:
        with pytest.raises(ValidationError, match="needs at least"):
            scheme(mask, np.random.default_rng(seed))
        return
    prompt = scheme(mask, np.random.default_rng(seed))
    assert prompt.box is None and prompt.point_labels.tolist() == [1] * n + [0] * neg
    assert inside(mask, prompt.points[:n]).all() and not inside(mask, prompt.points[n:]).any()
    assert len({tuple(p) for p in prompt.points.tolist()}) == n + neg
    ring_pixels = ((ndimage.distance_transform_edt(~mask) <= 4) & ~mask).sum()
    if neg_mode == "ring" and ring_pixels >= neg:
        dist = ndimage.distance_transform_edt(~mask)
        assert (dist[prompt.points[n:, 1].astype(int), prompt.points[n:, 0].astype(int)] <= 4).all()


@FAST
@given(blobs())
def test_interior_point_is_distance_maximum(mask: np.ndarray) -> None:
    prompt = parse_scheme("points:mode=interior")(mask, np.random.default_rng(0))
    dist = padded_edt(mask)
    x, y = prompt.points[0].astype(int)
    assert prompt.point_labels.tolist() == [1] and dist[y, x] == dist.max()


def test_interior_point_centres_on_plateau() -> None:
    mask = blob(40, 60, 20, 30, 5, 20, ellipse=False)
    assert parse_scheme("points:mode=interior")(mask, np.random.default_rng(0)).points.tolist() == [[30.0, 20.0]]
