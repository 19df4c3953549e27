"""Tests of samdata.synth.morph: registration of one labelled slice onto another."""

from __future__ import annotations

import numpy as np
import torch

from samdata.synth import fields
from samdata.synth.morph import label_levels, register
from tests.samdata.synth.pairs_data import atlas


def test_registration_moves_one_slice_onto_the_other() -> None:
    ref = atlas()
    a, b = ref.full_labels[0], ref.full_labels[3]
    u = register(b, a, label_levels(ref.images, ref.full_labels, (0, 1, 2, 3)))
    coords = fields.identity(*a.shape) + torch.from_numpy(u).permute(1, 2, 0)[None]
    warped = fields.warp_labels(torch.from_numpy(a.astype(np.int64))[None], coords, 4)[0].numpy()

    def dice(x: np.ndarray, y: np.ndarray) -> float:
        return 2 * (x & y).sum() / (x.sum() + y.sum())

    assert dice(a == 1, b == 1) < 0.75 < dice(warped == 1, b == 1)
    assert fields.jacobian_det(coords).min() > 0
