"""Prompt noise: jittered points keep honest labels, misclicks land just outside, missed edges cut in."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from scipy import ndimage

from samdata.prompts import PointsParams, PromptNoise, PromptScheme, parse_scheme
from samdata.prompts.regions import tight_box
from tests.samdata.prompts.shapes import FAST, SEEDS, blobs, in_image, inside


@FAST
@given(blobs(), SEEDS, st.floats(0.5, 6.0))
def test_jitter_noise_keeps_point_labels_honest(mask: np.ndarray, seed: int, sd: float) -> None:
    if (~mask).sum() < 2:
        return
    scheme = PromptScheme("points", PointsParams(n=1, neg=2), PromptNoise(jitter_px=sd))
    prompt = scheme(mask, np.random.default_rng(seed))
    assert inside(mask, prompt.points[:1]).all() and not inside(mask, prompt.points[1:]).any()


@FAST
@given(blobs(), SEEDS)
def test_misclick_lands_just_outside(mask: np.ndarray, seed: int) -> None:
    if mask.all():
        return
    prompt = parse_scheme("clicks:n=1,misclick=1")(mask, np.random.default_rng(seed))
    x, y = prompt.points[0].astype(int)
    assert prompt.point_labels.tolist() == [1] and not mask[y, x]
    assert ndimage.distance_transform_edt(~mask)[y, x] == 1.0


@FAST
@given(blobs(), SEEDS, st.floats(0.05, 0.5))
def test_missed_edge_cuts_into_object(mask: np.ndarray, seed: int, frac: float) -> None:
    tx0, ty0, tx1, ty1 = tight_box(mask)
    box = parse_scheme(f"box:jitter=3,missed_edge=1,missed_frac={frac!r}")(mask, np.random.default_rng(seed)).box
    assert in_image(box, mask.shape)
    if tx1 - tx0 >= 2 and ty1 - ty0 >= 2:
        assert box[0] > tx0 or box[1] > ty0 or box[2] < tx1 or box[3] < ty1
        assert box[0] < tx1 and box[2] > tx0 and box[1] < ty1 and box[3] > ty0
