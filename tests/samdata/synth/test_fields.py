"""Tests of samdata.synth.fields: identity, affine and the folding check."""

from __future__ import annotations

import numpy as np
import torch

from samdata.synth import fields


def test_fields_identity_affine_and_folding() -> None:
    coords = fields.identity(5, 7, 2)
    image = torch.arange(35, dtype=torch.float32).view(1, 1, 5, 7).expand(2, 1, 5, 7)
    assert torch.allclose(fields.warp(image, coords), image, atol=1e-4)
    assert torch.allclose(fields.jacobian_det(coords), torch.ones(2, 4, 6))
    labels = torch.randint(0, 3, (2, 5, 7))
    assert torch.equal(fields.warp_labels(labels, coords, 3), labels)
    mirrored = coords.clone()
    mirrored[..., 0] = 6 - mirrored[..., 0]  # a reflection: orientation reversed, determinant -1
    assert torch.all(fields.jacobian_det(mirrored) < 0)
    rng = np.random.default_rng(0)
    matrix = torch.from_numpy(fields.affine_matrix(rng, 0.0, 0.0, 0.0, (1.0, 1.0)))[None]
    assert torch.allclose(fields.apply_affine(coords[:1], matrix), coords[:1])
    control = fields.control_field(rng, (40, 50), (0.5, 2.0), 4.0, 10.0)  # 25 x 80 mm: 4 x 9 points
    assert control.shape == (2, 9, 4) and np.abs(control[0]).max() <= 8.0 and np.abs(control[1]).max() <= 2.0
