"""samdata.synth.losses: the hinge losses of the discriminator and the generator."""

from __future__ import annotations

import pytest
import torch

from samdata.synth.losses import d_hinge, g_hinge


def test_hinge_losses() -> None:
    assert float(d_hinge(torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.0]))) == pytest.approx(0.25 + 0.5)
    assert float(g_hinge(torch.tensor([1.0, 3.0]))) == -2.0
