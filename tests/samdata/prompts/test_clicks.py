"""Click prompts: ClickSAM counts, centroidal-Voronoi spreading and corrective clicks on the error regions."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from samdata.errors import ConfigError, ValidationError
from samdata.prompts import ClickParams, PromptScheme, clicksam_count, corrective_click, cvt_points, parse_scheme
from tests.samdata.prompts.shapes import FAST, SEEDS, blob, blobs, inside, padded_edt


@pytest.mark.parametrize(
    ("area", "expected"),
    [(1, 1), (999, 1), (1000, 1), (3162, 1), (3163, 2), (10_000, 3), (31_623, 4), (100_000, 5), (10**7, 5)],
)
def test_clicksam_count(area: int, expected: int) -> None:
    assert clicksam_count(area) == expected
    assert clicksam_count(area, max_clicks=2) == min(expected, 2)


def test_click_count_grows_with_area() -> None:
    mask = np.ones((100, 100), bool)  # area 10,000 -> 3 clicks
    assert parse_scheme("clicks")(mask, np.random.default_rng(0)).n_points == 3
    assert parse_scheme("clicks:max=2")(mask, np.random.default_rng(0)).n_points == 2
    assert parse_scheme("clicks:n=6")(mask, np.random.default_rng(0)).n_points == 6


@FAST
@given(blobs(), SEEDS, st.integers(1, 5))
def test_clicks_distinct_and_inside(mask: np.ndarray, seed: int, n: int) -> None:
    scheme = PromptScheme("clicks", ClickParams(n=n))
    if mask.sum() < n:
        with pytest.raises(ValidationError, match=f"needs at least {n} pixels"):
            scheme(mask, np.random.default_rng(seed))
        return
    prompt = scheme(mask, np.random.default_rng(seed))
    assert prompt.point_labels.tolist() == [1] * n and inside(mask, prompt.points).all()
    assert len({tuple(p) for p in prompt.points.tolist()}) == n


def _min_pairwise(points: np.ndarray) -> float:
    """Smallest distance between two of (N, 2) points."""
    return min(float(np.hypot(*(a - b))) for a, b in itertools.combinations(points, 2))


def test_cvt_clicks_spread_more_evenly_than_uniform() -> None:
    rng = np.random.default_rng(7)
    cvt, uniform = [], []
    for _ in range(40):
        h, w = rng.integers(48, 97, size=2)
        mask = blob(h, w, h // 2, w // 2, rng.integers(8, h // 2), rng.integers(8, w // 2), bool(rng.integers(2)))
        cvt.append(_min_pairwise(cvt_points(mask, 4, rng)))
        pixels = np.argwhere(mask)[:, ::-1]
        uniform.append(_min_pairwise(pixels[rng.choice(len(pixels), 4, replace=False)].astype(float)))
    assert np.mean(cvt) > 1.5 * np.mean(uniform)


@FAST
@given(blobs(), blobs(), SEEDS, st.sampled_from(["interior", "random"]))
def test_corrective_click_lands_in_the_right_error(gt: np.ndarray, other: np.ndarray, seed: int, mode: str) -> None:
    pred = np.zeros_like(gt)
    h, w = min(gt.shape[0], other.shape[0]), min(gt.shape[1], other.shape[1])
    pred[:h, :w] = other[:h, :w]
    prompt = corrective_click(gt, pred, np.random.default_rng(seed), mode=mode)
    x, y = prompt.points[0].astype(int)
    fn, fp = gt & ~pred, pred & ~gt
    assert prompt.n_points == 1 and prompt.box is None
    if prompt.point_labels[0] == 1:
        assert fn[y, x] or (not fn.any() and not fp.any() and gt[y, x])
    else:
        assert fp[y, x]
    if mode == "interior":
        depth = max(padded_edt(fn).max(), padded_edt(fp).max())
        region = fn if prompt.point_labels[0] == 1 else fp
        assert padded_edt(region)[y, x] == depth or not (fn.any() or fp.any())


def test_corrective_click_cases() -> None:
    gt = blob(48, 48, 24, 24, 10, 10, ellipse=False)
    rng = np.random.default_rng(0)
    assert corrective_click(gt, np.zeros_like(gt), rng).point_labels.tolist() == [1]
    assert corrective_click(gt, np.ones_like(gt), rng).point_labels.tolist() == [0]
    no_error = corrective_click(gt, gt, rng, mode="random")
    assert no_error.point_labels.tolist() == [1] and inside(gt, no_error.points).all()
    empty = np.zeros_like(gt)
    with pytest.raises(ValidationError, match="both empty"):
        corrective_click(empty, empty, rng)
    with pytest.raises(ValidationError, match="one shape"):
        corrective_click(gt, gt[:10], rng)
    with pytest.raises(ConfigError, match="interior, random"):
        corrective_click(gt, gt, rng, mode="centre")
