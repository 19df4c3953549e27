"""The honest baseline: a 2D U-Net (MONAI ``UNet``) trained from scratch on the same mixture as SAM.

It takes no prompt (``promptable = False``): it predicts one logit map per label name and an object is
scored on its label's channel, so it must find the structure everywhere in the slice, as a user who trains a
U-Net would. The shape is REFERENCES.md's measured reference (channels 16..256, 2 residual units, instance
norm, so the trainable weights are the whole state); nnU-Net's 2D plan at 256² is this shape with wider
stages, which costs CPU time without changing the answer here. The class offers the parts of
:class:`training.models.SamModel` that training, evaluation and prediction use outside the prompt path.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from samdata.errors import ConfigError, ValidationError
from training.models.sam import normalise_frames

UNET_CHANNELS = (16, 32, 64, 128, 256)
UNET_SIZE = 256
FOREGROUND = "foreground"


class UNetModel(nn.Module):
    """A prompt-free 2D segmenter: (B, 3, S, S) preprocessed frames → (B, len(label_names), S, S) logits."""

    promptable = False

    def __init__(
        self, net: nn.Module, label_names: Sequence[str], img_size: int = UNET_SIZE, name: str = "unet"
    ) -> None:
        super().__init__()
        if not label_names or len(set(label_names)) != len(label_names):
            raise ConfigError(f"{name}: label names {list(label_names)!r}; expected distinct names, at least one")
        self.net, self.name, self.img_size = net, name, int(img_size)
        self.label_names = tuple(str(n) for n in label_names)
        self.checkpoint_path: str | None = None
        # non-persistent, as SamModel's: the state dict holds the network's weights only
        self.register_buffer("pixel_mean", torch.full((1, 3, 1, 1), 127.5), persistent=False)
        self.register_buffer("pixel_std", torch.full((1, 3, 1, 1), 127.5), persistent=False)

    @property
    def low_res_size(self) -> int:
        """Side of the logits: the input side (a U-Net predicts at full resolution)."""
        return self.img_size

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3 or 1, H, W) 0..255 images → (B, 3, S, S) float in [-1, 1] at the model size."""
        return normalise_frames(images, self.img_size, self.pixel_mean, self.pixel_std, self.name)

    def postprocess(self, logits: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        """(B, 1, S, S) logits bilinearly resized to (B, 1, *size), by default left at (S, S)."""
        size = size or (self.img_size, self.img_size)
        if tuple(logits.shape[-2:]) == tuple(size):
            return logits
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, S, S) logits, channel c for ``label_names[c]``, of (B, 3, S, S) preprocessed frames."""
        return self.net(images)

    def channels(self, names: Sequence[str]) -> torch.Tensor:
        """(N,) int64 output channel of each label name (a model of one ``foreground`` channel takes any)."""
        if self.label_names == (FOREGROUND,):
            return torch.zeros(len(names), dtype=torch.int64)
        missing = sorted({str(n) for n in names} - set(self.label_names))
        if missing:
            raise ValidationError(f"{self.name} was built for labels {list(self.label_names)}, not {missing}")
        return torch.tensor([self.label_names.index(str(n)) for n in names], dtype=torch.int64)

    def segment(self, images: torch.Tensor, channels: torch.Tensor) -> torch.Tensor:
        """(N, 1, S, S) logits of item i's label ``channels[i]`` for (N, 3, S, S) preprocessed frames."""
        logits = self(images)
        index = channels.to(logits.device).view(-1, 1, 1, 1).expand(-1, 1, *logits.shape[-2:])
        return logits.gather(1, index)


def build_unet(checkpoint: str | None = None, labels: Sequence[str] | None = None, *, seed: int = 0) -> UNetModel:
    """A MONAI 2D U-Net for ``labels`` (one output channel each; None: one ``foreground`` channel), initialised
    from ``seed``; ``checkpoint``: a state dict of the same network to start from."""
    from monai.networks.nets import UNet  # imported here: ``import monai`` costs seconds

    names = tuple(labels) if labels else (FOREGROUND,)
    with torch.random.fork_rng(devices=[]):  # module initialisers draw from the global RNG
        torch.manual_seed(seed)
        net = UNet(
            spatial_dims=2,
            in_channels=3,
            out_channels=len(names),
            channels=UNET_CHANNELS,
            strides=(2,) * (len(UNET_CHANNELS) - 1),
            num_res_units=2,
        )
    model = UNetModel(net, names)
    if checkpoint is not None:
        from training.models.registry import load_weights

        load_weights(model, checkpoint, variant="unet")
        model.checkpoint_path = str(checkpoint)
    return model.eval()
