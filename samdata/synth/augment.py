"""Differentiable augmentation (DiffAugment, Zhao et al. NeurIPS 2020) for image+mask stacks.

The same random, differentiable transforms are applied to real and generated samples whenever the
discriminator sees them, so a discriminator trained on tens of images cannot memorise them. ``color``
touches the image only; ``translation`` and ``cutout`` move or erase image and masks together, filling with
-1 (background) rather than the original's 0, which would paint a grey frame onto dark medical images.
Written here (about 60 lines after the reference recipe) because no installed library offers it with an
explicit ``torch.Generator`` (kornia is not a dependency).
"""

from __future__ import annotations

from collections.abc import Callable
from types import MappingProxyType

import torch
import torch.nn.functional as F

from samdata.errors import unknown_name
from samdata.spec import split_list

Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]
FILL = -1.0  # background in [-1, 1]


def _uniform(x: torch.Tensor, gen: torch.Generator, *shape: int) -> torch.Tensor:
    """U(0, 1) of ``shape`` on ``x``'s device and dtype, from ``gen``."""
    return torch.rand(*shape, generator=gen, device=x.device, dtype=x.dtype)


def color(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random brightness (±0.5) and contrast (×0.5..1.5) of channel 0 (the image) of (B, C, H, W)."""
    n = x.shape[0]
    image = x[:, :1]
    image = image + (_uniform(x, gen, n, 1, 1, 1) - 0.5)
    mean = image.mean(dim=(1, 2, 3), keepdim=True)
    image = (image - mean) * (_uniform(x, gen, n, 1, 1, 1) + 0.5) + mean
    return torch.cat([image, x[:, 1:]], dim=1)


def translation(x: torch.Tensor, gen: torch.Generator, ratio: float = 0.125) -> torch.Tensor:
    """Shift each (B, C, H, W) sample by up to ``ratio`` of its size, filling with background."""
    n, _, h, w = x.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ty = torch.randint(-sy, sy + 1, (n, 1, 1), generator=gen, device=x.device)
    tx = torch.randint(-sx, sx + 1, (n, 1, 1), generator=gen, device=x.device)
    gy, gx = torch.meshgrid(torch.arange(h, device=x.device), torch.arange(w, device=x.device), indexing="ij")
    gy = torch.clamp(gy + ty + 1, 0, h + 1)
    gx = torch.clamp(gx + tx + 1, 0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1], value=FILL).permute(0, 2, 3, 1)
    batch = torch.arange(n, device=x.device).view(n, 1, 1)
    return padded[batch, gy, gx].permute(0, 3, 1, 2).contiguous()


def cutout(x: torch.Tensor, gen: torch.Generator, ratio: float = 0.5) -> torch.Tensor:
    """Erase one random square of ``ratio`` × the side per sample (all channels) to background."""
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    oy = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), generator=gen, device=x.device)
    ox = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), generator=gen, device=x.device)
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    top, left = oy - ch // 2, ox - cw // 2
    inside = (ys >= top) & (ys < top + ch) & (xs >= left) & (xs < left + cw)
    return torch.where(inside.unsqueeze(1), torch.full_like(x, FILL), x)


POLICIES: MappingProxyType[str, Augment] = MappingProxyType(
    {
        "color": color,
        "translation": translation,
        "cutout": cutout,
    }
)


def parse_policy(spec: str) -> tuple[str, ...]:
    """``"color,translation,cutout"`` → names checked against :data:`POLICIES` ('' or 'none' → none)."""
    if spec.strip() in ("", "none"):
        return ()
    names = split_list(spec)
    for name in names:
        if name not in POLICIES:
            raise unknown_name("DiffAugment policy", name, list(POLICIES))
    return names


def diff_augment(x: torch.Tensor, policy: tuple[str, ...], gen: torch.Generator) -> torch.Tensor:
    """Apply the policy's transforms in order to (B, 1 + K, H, W) stacks in [-1, 1] (differentiable)."""
    for name in policy:
        x = POLICIES[name](x, gen)
    return x
