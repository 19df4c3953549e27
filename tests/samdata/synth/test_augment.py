"""samdata.synth.augment: DiffAugment is seeded, differentiable and keeps image and mask together."""

from __future__ import annotations

import pytest
import torch

from samdata.errors import RegistryError
from samdata.synth.augment import POLICIES, diff_augment, parse_policy


def test_diff_augment_is_seeded_differentiable_and_keeps_pairs_together() -> None:
    image = -torch.ones(4, 1, 32, 32)
    image[:, :, 8:20, 10:22] = 0.8
    x = torch.cat([image, torch.where(image > 0, 1.0, -1.0)], dim=1).requires_grad_(True)
    for name in POLICIES:
        a = diff_augment(x, (name,), torch.Generator().manual_seed(3))
        b = diff_augment(x, (name,), torch.Generator().manual_seed(3))
        assert a.shape == x.shape and torch.equal(a, b)
        a.sum().backward()
        assert x.grad is not None and x.grad.abs().sum() > 0
        x.grad = None
    moved = diff_augment(x, ("translation", "cutout"), torch.Generator().manual_seed(0)).detach()
    assert torch.equal(moved[:, 1] > 0, moved[:, 0] > 0)  # mask still covers exactly the bright square
    coloured = diff_augment(x, ("color",), torch.Generator().manual_seed(0)).detach()
    assert torch.equal(coloured[:, 1], x[:, 1].detach()) and not torch.equal(coloured[:, 0], x[:, 0].detach())
    assert parse_policy("none") == () and parse_policy("color, cutout") == ("color", "cutout")
    with pytest.raises(RegistryError, match="color, cutout, translation"):
        parse_policy("color,flip")
