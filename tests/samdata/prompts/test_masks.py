"""Mask prompts: erode, dilate and shift degradations, and the mask framed at SAM's input size."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import ndimage

from samdata.errors import ValidationError
from samdata.prompts import MaskParams, PromptScheme, degrade_mask, parse_scheme
from tests.samdata.prompts.shapes import FAST, SEEDS, blob, blobs


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
