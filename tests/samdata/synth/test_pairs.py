"""samdata.synth.pairs: conversions between store slices, model tensors and generator outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from samdata.errors import ValidationError
from samdata.synth.pairs import RealPairs, binary_mask, grey_uint8, to_model, to_store_grid
from tests.samdata.synth.pairs_data import blob_pairs


def test_pairs_round_trip_and_foreign_outputs() -> None:
    pairs = blob_pairs()
    x = to_model(pairs.images, pairs.masks, 64)
    assert x.shape == (6, 2, 64, 64) and x.min() >= -1 and x.max() <= 1
    logits = torch.cat([x[:, :1], (x[:, 1:] > 0).float() * 20 - 10], dim=1)
    images, labels = to_store_grid(logits, pairs.grid, pairs.label_values)
    assert images.dtype == np.uint8 and images.shape == pairs.images.shape
    assert set(np.unique(labels)) <= {0, 3}
    overlap = ((labels == 3) & pairs.masks[:, 0]).sum() * 2 / ((labels == 3).sum() + pairs.masks[:, 0].sum())
    assert overlap > 0.9
    assert np.abs(images.astype(int) - pairs.images).mean() < 12
    rgb = np.zeros((5, 4, 3), np.uint8)
    rgb[..., 1] = 100
    assert grey_uint8(rgb).tolist() == [[59] * 4] * 5
    assert grey_uint8(np.full((3, 3), 0.5, np.float32)).max() == 128
    assert binary_mask(np.array([[0, 255], [255, 0]], np.uint8)).tolist() == [[False, True], [True, False]]
    with pytest.raises(ValidationError, match="masks"):
        RealPairs(pairs.images, pairs.masks[:, 0], (3,), ("blob",), (1.0, 1.0, 1.0), "MR")
