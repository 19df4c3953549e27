"""GAN losses: the hinge loss (Lim & Ye 2017; used by SAGAN, BigGAN and FastGAN with spectral norm).

The hinge loss keeps the discriminator's gradients bounded once it is confident (margin 1),
which with spectral norm is the stable combination the few-shot GAN literature relies on.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def d_hinge(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator hinge loss: mean relu(1 - D(real)) + mean relu(1 + D(fake)); logits (B,)."""
    return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()


def g_hinge(fake_logits: torch.Tensor) -> torch.Tensor:
    """Generator hinge loss: -mean D(fake); logits (B,)."""
    return -fake_logits.mean()
