"""Object-mask regions: tight boxes, windowed distances, and the errors every scheme raises on a bad mask."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import ndimage

from samdata.errors import ValidationError
from samdata.prompts import SCHEMES, PromptScheme, degrade_mask, parse_scheme
from samdata.prompts.regions import depth, ring, tight_box
from tests.samdata.prompts.shapes import FAST, blobs, padded_edt


@FAST
@given(blobs())
def test_tight_box_is_the_extent_of_the_object(mask: np.ndarray) -> None:
    ys, xs = np.nonzero(mask)
    assert tight_box(mask) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)


def test_tight_box_of_an_empty_mask_names_the_problem() -> None:
    with pytest.raises(ValidationError, match="non-empty mask; got 0 object pixels in a 4x6 mask"):
        tight_box(np.zeros((4, 6), dtype=bool))


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
    with pytest.raises(
        ValidationError,
        match=r"points:n=3 \(object pixels\) needs at least 3 pixels; "
        r"the region has 2 \(mask 32x32\)",
    ):
        parse_scheme("points:n=3")(mask, np.random.default_rng(0))
    full = np.ones((8, 8), np.uint8)
    with pytest.raises(
        ValidationError,
        match=r"points:neg=1 \(background pixels\) needs at least 1 pixels; "
        r"the region has 0 \(mask 8x8\)",
    ):
        parse_scheme("points:neg=1")(full, np.random.default_rng(0))
