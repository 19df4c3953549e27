"""Prompt schemes on random blob masks: geometry bounds, labels, spreading, noise, determinism, errors."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from samdata.errors import ConfigError, ValidationError
from samdata.prompts import (
    SCHEMES,
    BoxParams,
    ClickParams,
    HybridParams,
    MaskParams,
    PointsParams,
    PromptNoise,
    PromptScheme,
    clicksam_count,
    corrective_click,
    cvt_points,
    degrade_mask,
    object_rng,
    parse_scheme,
)
from samdata.prompts.regions import depth, ring, tight_box

FAST = settings(max_examples=40, deadline=None)
SEEDS = st.integers(0, 2**32 - 1)


def blob(h: int, w: int, cy: int, cx: int, ry: int, rx: int, ellipse: bool) -> np.ndarray:
    """An ellipse or rectangle (Y, X) bool mask; always holds its centre pixel."""
    yy, xx = np.mgrid[:h, :w]
    if ellipse:
        return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
    return (np.abs(yy - cy) <= ry) & (np.abs(xx - cx) <= rx)


@st.composite
def blobs(draw: st.DrawFn) -> np.ndarray:
    """A random ellipse or rectangle, sometimes joined with a second one, in a 32..96 px image."""
    h, w = draw(st.integers(32, 96)), draw(st.integers(32, 96))
    mask = np.zeros((h, w), bool)
    for _ in range(draw(st.integers(1, 2))):
        mask |= blob(h, w, draw(st.integers(0, h - 1)), draw(st.integers(0, w - 1)),
                     draw(st.integers(1, h // 2)), draw(st.integers(1, w // 2)), draw(st.booleans()))
    return mask


def padded_edt(region: np.ndarray) -> np.ndarray:
    """Reference depth map over the whole image: distance to the nearest non-region pixel or the border."""
    return ndimage.distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1]


def inside(mask: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Whether each (x, y) integer point lies on a True pixel of ``mask``."""
    xs, ys = points[:, 0].astype(int), points[:, 1].astype(int)
    return mask[ys, xs]


def in_image(box: tuple[int, int, int, int], shape: tuple[int, ...]) -> bool:
    """Whether a box lies within a (Y, X) image and is non-empty."""
    x0, y0, x1, y1 = box
    return 0 <= x0 < x1 <= shape[1] and 0 <= y0 < y1 <= shape[0]


@FAST
@given(blobs())
def test_tight_box_is_the_extent_of_the_object(mask: np.ndarray) -> None:
    ys, xs = np.nonzero(mask)
    assert tight_box(mask) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)


def test_tight_box_of_an_empty_mask_names_the_problem() -> None:
    with pytest.raises(ValidationError, match="non-empty mask; got 0 object pixels in a 4x6 mask"):
        tight_box(np.zeros((4, 6), dtype=bool))


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
@given(blobs(), st.integers(0, 6))
def test_windowed_distances_match_whole_image(mask: np.ndarray, px: int) -> None:
    outside = ndimage.distance_transform_edt(~mask)
    assert np.array_equal(ring(mask, px + 1), (outside <= px + 1) & ~mask)
    rng = np.random.default_rng(0)
    assert np.array_equal(degrade_mask(mask, rng, "dilate", px), outside <= px)
    if (~mask).any() and (ndimage.distance_transform_edt(mask) > px).any():
        assert np.array_equal(degrade_mask(mask, rng, "erode", px), ndimage.distance_transform_edt(mask) > px)
    assert depth(mask) == padded_edt(mask).max()


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


@pytest.mark.parametrize(("area", "expected"), [(1, 1), (999, 1), (1000, 1), (3162, 1), (3163, 2), (10_000, 3),
                                                (31_623, 4), (100_000, 5), (10**7, 5)])
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


@FAST
@given(blobs(), SEEDS, st.integers(0, 4))
def test_mask_degradations(mask: np.ndarray, seed: int, px: int) -> None:
    rng = np.random.default_rng(seed)
    dilated = degrade_mask(mask, rng, "dilate", px)
    assert (dilated >= mask).all() and (ndimage.distance_transform_edt(~mask)[dilated] <= px).all()
    shifted = degrade_mask(mask, rng, "shift", px) if px == 0 else None
    if shifted is not None:
        assert np.array_equal(shifted, mask)
    try:
        eroded = degrade_mask(mask, rng, "erode", px)
    except ValidationError as err:
        assert "leaves no object pixels" in str(err)
    else:
        assert (eroded <= mask).all() and eroded.any()


def test_mask_prompt_sizes_and_shift() -> None:
    mask = blob(60, 80, 30, 40, 10, 12, ellipse=True)
    rng = np.random.default_rng(3)
    framed = parse_scheme("mask:op=dilate,px=2")(mask, rng).mask
    assert framed.shape == (256, 256) and framed.dtype == bool and not framed[193:].any()  # 60*256/80 = 192
    full = parse_scheme("mask:op=shift,px=3,size=0")(mask, rng).mask
    assert full.shape == mask.shape and full.sum() == mask.sum() and not np.array_equal(full, mask)
    ys, xs = np.nonzero(full)
    oy, ox = np.nonzero(mask)
    dx, dy = xs.mean() - ox.mean(), ys.mean() - oy.mean()
    assert max(abs(dx), abs(dy)) <= 3 and abs(math.hypot(dx, dy) - 3) <= math.sqrt(0.5)  # rounded direction
    thin = blob(60, 80, 30, 40, 1, 20, ellipse=False)
    with pytest.raises(ValidationError, match="op=erode,px=3 leaves no object pixels"):
        PromptScheme("mask", MaskParams(op="erode", px=3))(thin, rng)


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


NOISY = "jitter_px=1.5,misclick=0.3,missed_edge=0.5"


@pytest.mark.parametrize("name", sorted(SCHEMES))
def test_same_seed_same_prompts(name: str) -> None:
    mask = blob(64, 72, 30, 36, 14, 18, ellipse=True)
    extra = {"points": "neg=2,", "clicks": "n=3,", "hybrid": "box+points=0.5,box=0.25,points=0.25,"}.get(name, "")
    scheme = parse_scheme(f"{name}:{extra}{NOISY}")
    first = [scheme(mask, object_rng(11, "case-a", 4, 2)) for _ in range(3)]
    again = [scheme(mask, object_rng(11, "case-a", 4, 2)) for _ in range(3)]
    assert first == again and first[0] == first[1]
    runs = [scheme(mask, rng) for rng in [np.random.default_rng(5)] for _ in range(8)]
    assert any(p != runs[0] for p in runs[1:])


def test_object_rng_depends_on_every_key() -> None:
    draws = {object_rng(*key).integers(2**62) for key in
             [(1, "a", 0, 1), (2, "a", 0, 1), (1, "b", 0, 1), (1, "a", 1, 1), (1, "a", 0, 2)]}
    assert len(draws) == 5
    with pytest.raises(ConfigError, match="non-negative"):
        object_rng(-1, "a", 0, 1)


@pytest.mark.parametrize("name", sorted(SCHEMES))
def test_empty_or_bad_mask_is_rejected(name: str) -> None:
    scheme = PromptScheme(name)
    with pytest.raises(ValidationError, match="0 object pixels in a 32x40 mask"):
        scheme(np.zeros((32, 40), bool), np.random.default_rng(0))
    with pytest.raises(ValidationError, match="2D"):
        scheme(np.ones((2, 32, 40), bool), np.random.default_rng(0))


def test_too_few_pixels_names_requirement_and_size() -> None:
    mask = np.zeros((32, 32), bool)
    mask[5, 5:7] = True
    with pytest.raises(ValidationError, match=r"points:n=3 \(object pixels\) needs at least 3 pixels; "
                                              r"the region has 2 \(mask 32x32\)"):
        parse_scheme("points:n=3")(mask, np.random.default_rng(0))
    full = np.ones((8, 8), np.uint8)
    with pytest.raises(ValidationError, match=r"points:neg=1 \(background pixels\) needs at least 1 pixels; "
                                              r"the region has 0 \(mask 8x8\)"):
        parse_scheme("points:neg=1")(full, np.random.default_rng(0))
