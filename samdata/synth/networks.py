"""Paired generators (one image channel + K mask channels from one latent) and their discriminator.

:data:`GENERATORS` holds ``fastgan`` (FastGAN's generator scaled down for tens of slices; its skip-layer
excitation is what lets it train stably in few steps) and ``dcgan`` (the baseline). Generator convolutions
pad by replication, since zero padding drew a grey frame on black backgrounds; the discriminator is a
spectral-norm DCGAN net trained with the hinge loss. Output channel 0 is the image in [-1, 1], 1..K the
mask logits. Written here because no installed library (torchvision, MONAI, timm) ships a GAN generator or
a few-shot GAN; they are small and follow the papers' layer recipes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import MappingProxyType

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

from samdata.errors import ConfigError, unknown_name

SIZES: tuple[int, ...] = (32, 64, 128, 256)
MAX_CHANNELS = 256


@dataclass(frozen=True)
class NetConfig:
    """Shape of a paired GAN: generator ``arch``, output ``size`` (square), latent length, base
    ``width`` (channels at full resolution, doubled per halving up to 256) and number of mask ``labels``."""

    arch: str = "fastgan"
    size: int = 64
    latent: int = 64
    width: int = 16
    labels: int = 1

    def __post_init__(self) -> None:
        if self.arch not in GENERATORS:
            raise unknown_name("generator architecture", self.arch, list(GENERATORS))
        if self.size not in SIZES:
            raise ConfigError(f"GAN size={self.size!r}; expected one of {SIZES} (square, power of two)")
        for key, low in (("latent", 2), ("width", 4), ("labels", 1)):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"GAN {key}={value!r}; expected an integer >= {low}")

    def channels(self, resolution: int) -> int:
        """Feature channels at ``resolution`` (width at full size, doubling per halving, capped)."""
        return min(MAX_CHANNELS, self.width * (self.size // resolution))

    @property
    def levels(self) -> list[int]:
        """Resolutions 4, 8, ..., size."""
        return [2**i for i in range(2, int(math.log2(self.size)) + 1)]


class GLUBlock(nn.Module):
    """Upsample x2 (nearest), 3x3 conv to 2C, BatchNorm, GLU → C channels (FastGAN's UpBlock)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(c_in, 2 * c_out, 3, padding=1, bias=False, padding_mode="replicate"),
            nn.BatchNorm2d(2 * c_out),
            nn.GLU(dim=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, c_in, h, w) → (B, c_out, 2h, 2w)."""
        return self.body(x)


class SLE(nn.Module):
    """Skip-layer excitation: channel gates from a small map (pooled to 4x4) multiply a large map."""

    def __init__(self, c_small: int, c_big: int) -> None:
        super().__init__()
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(4),
            nn.Conv2d(c_small, c_big, 4, bias=False),
            nn.SiLU(),
            nn.Conv2d(c_big, c_big, 1, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, small: torch.Tensor, big: torch.Tensor) -> torch.Tensor:
        """``big`` (B, c_big, H, W) scaled per channel by gates computed from ``small``."""
        return big * self.gate(small)


class PairedGenerator(nn.Module):
    """Latent (B, latent) → (B, 1 + labels, size, size): image (tanh) and mask logits."""

    def __init__(self, config: NetConfig) -> None:
        super().__init__()
        self.config = config
        c4 = config.channels(4)
        self.init = nn.Sequential(
            nn.ConvTranspose2d(config.latent, 2 * c4, 4, bias=False), nn.BatchNorm2d(2 * c4), nn.GLU(dim=1)
        )
        self.ups = nn.ModuleList(
            GLUBlock(config.channels(r), config.channels(2 * r))
            if config.arch == "fastgan"
            else nn.Sequential(
                nn.ConvTranspose2d(config.channels(r), config.channels(2 * r), 4, 2, 1, bias=False),
                nn.BatchNorm2d(config.channels(2 * r)),
                nn.ReLU(inplace=True),
            )
            for r in config.levels[:-1]
        )
        # SLE from resolution r to 8r (FastGAN: 4→64, 8→128, 16→256 at 1024; here every 8x pair)
        self.sle_pairs = [(r, 8 * r) for r in config.levels if 8 * r <= config.size] if config.arch == "fastgan" else []
        self.sles = nn.ModuleList(SLE(config.channels(r), config.channels(big)) for r, big in self.sle_pairs)
        self.out = nn.Conv2d(config.channels(config.size), 1 + config.labels, 3, padding=1, padding_mode="replicate")

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Map latents (B, latent) to (B, 1 + K, S, S): image in [-1, 1] then K mask logits."""
        x = self.init(z.view(z.shape[0], -1, 1, 1))
        feats = {4: x}
        for r, up in zip(self.config.levels[:-1], self.ups):
            x = up(x)
            for (small, big), sle in zip(self.sle_pairs, self.sles):
                if big == 2 * r:
                    x = sle(feats[small], x)
            feats[2 * r] = x
        y = self.out(x)
        return torch.cat([torch.tanh(y[:, :1]), y[:, 1:]], dim=1)


class Discriminator(nn.Module):
    """(B, 1 + K, S, S) image and mask (both in [-1, 1]) → (B,) realness logits; spectral norm throughout."""

    def __init__(self, config: NetConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            spectral_norm(nn.Conv2d(1 + config.labels, config.channels(config.size), 3, padding=1)),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        for r in reversed(config.levels[1:]):
            layers += [
                spectral_norm(nn.Conv2d(config.channels(r), config.channels(r // 2), 4, 2, 1)),
                nn.LeakyReLU(0.2, inplace=True),
            ]
        layers.append(spectral_norm(nn.Conv2d(config.channels(4), 1, 4)))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Realness logits (B,) of image+mask stacks."""
        return self.body(x).view(x.shape[0])


def _init_weights(module: nn.Module) -> None:
    """DCGAN initialisation: conv weights N(0, 0.02), BatchNorm weights N(1, 0.02) and bias 0."""
    if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
        weight = (
            module.parametrizations.weight.original if parametrize.is_parametrized(module, "weight") else module.weight
        )
        nn.init.normal_(weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


GENERATORS: MappingProxyType[str, str] = MappingProxyType(
    {
        "fastgan": "FastGAN-style: upsample+conv+GLU blocks with skip-layer excitation (default)",
        "dcgan": "DCGAN-style: transposed convolutions, BatchNorm, ReLU (baseline)",
    }
)


def build_networks(config: NetConfig, seed: int) -> tuple[PairedGenerator, Discriminator]:
    """A freshly initialised generator and discriminator; the same ``seed`` gives the same weights."""
    if config.arch not in GENERATORS:
        raise unknown_name("generator architecture", config.arch, list(GENERATORS))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        generator, discriminator = PairedGenerator(config), Discriminator(config)
        generator.apply(_init_weights)
        discriminator.apply(_init_weights)
    return generator, discriminator


def build_generator(config: NetConfig) -> PairedGenerator:
    """A generator of ``config``'s shape to load weights into (weights are the seed-0 initialisation)."""
    return build_networks(config, 0)[0]
