"""Box prompts: fixed, relative and Gaussian jitter keep the object within their bounds."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from samdata.prompts import BoxParams, PromptScheme, parse_scheme
from samdata.prompts.regions import tight_box
from tests.samdata.prompts.shapes import FAST, SEEDS, blob, blobs, in_image


@FAST
@given(blobs(), SEEDS, st.integers(0, 20))
def test_fixed_box_holds_object_within_jitter(mask: np.ndarray, seed: int, jitter: int) -> None:
    box = PromptScheme("box", BoxParams(jitter=jitter))(mask, np.random.default_rng(seed)).box
    tx0, ty0, tx1, ty1 = tight_box(mask)
    assert in_image(box, mask.shape)
    assert max(0, tx0 - jitter) <= box[0] <= tx0 and max(0, ty0 - jitter) <= box[1] <= ty0
    assert tx1 <= box[2] <= min(mask.shape[1], tx1 + jitter) and ty1 <= box[3] <= min(mask.shape[0], ty1 + jitter)


@FAST
@given(blobs(), SEEDS, st.floats(0.0, 0.5))
def test_relative_box_holds_object_within_fraction(mask: np.ndarray, seed: int, frac: float) -> None:
    box = parse_scheme(f"box:mode=relative,frac={frac!r}")(mask, np.random.default_rng(seed)).box
    tx0, ty0, tx1, ty1 = tight_box(mask)
    bx, by = math.ceil(frac * (tx1 - tx0)), math.ceil(frac * (ty1 - ty0))
    assert in_image(box, mask.shape)
    assert tx0 - bx <= box[0] <= tx0 and ty0 - by <= box[1] <= ty0
    assert tx1 <= box[2] <= tx1 + bx and ty1 <= box[3] <= ty1 + by


@FAST
@given(blobs(), SEEDS, st.floats(0.0, 0.5), st.integers(0, 20))
def test_gauss_box_edges_within_cap_and_on_object(mask: np.ndarray, seed: int, sigma: float, cap: int) -> None:
    box = PromptScheme("box", BoxParams(mode="gauss", sigma=sigma, cap=cap))(mask, np.random.default_rng(seed)).box
    tight = tight_box(mask)
    assert in_image(box, mask.shape)
    assert all(abs(b - t) <= cap for b, t in zip(box, tight, strict=True))
    assert box[0] < tight[2] and box[2] > tight[0] and box[1] < tight[3] and box[3] > tight[1]


def test_fixed_jitter_covers_zero_to_k() -> None:
    mask = blob(64, 64, 32, 32, 8, 10, ellipse=False)
    scheme = parse_scheme("box:jitter=5")
    rng = np.random.default_rng(0)
    offsets = {32 - 10 - scheme(mask, rng).box[0] for _ in range(300)}
    assert offsets == set(range(6))
