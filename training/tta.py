"""Test-time augmentation by mirroring: nnU-Net's default at inference, for SAM and the U-Net alike.

Each mirrored view (``none``; ``lr``; all four with ``flip``) is segmented, a promptable model getting the
view's mirrored prompt, and the probabilities, flipped back on the slice grid, are averaged. Frames are
flipped inside their unpadded part only, because training never put padding at the top or left. Written
here rather than taken from MONAI (``monai.transforms.TestTimeAugmentation`` draws random transforms and
inverts them through its own metadata) or TorchIO (no inference-time inversion for prompts): neither maps
SAM's box and point prompts into the view.
"""

from __future__ import annotations

from types import MappingProxyType

import numpy as np
import torch

from samdata.errors import unknown_name
from samdata.prompts import Prompt

View = tuple[bool, bool]  # (flip left-right, flip up-down)

TTA_VIEWS: MappingProxyType[str, tuple[View, ...]] = MappingProxyType(
    {
        "none": ((False, False),),
        "lr": ((False, False), (True, False)),
        "flip": ((False, False), (True, False), (False, True), (True, True)),
    }
)


def tta_views(name: str) -> tuple[View, ...]:
    """The views of TTA mode ``name`` (RegistryError naming the valid modes otherwise)."""
    try:
        return TTA_VIEWS[name]
    except KeyError as err:
        raise unknown_name("test-time augmentation", name, tuple(TTA_VIEWS)) from err


def flip_frames(frames: torch.Tensor, sizes: list[tuple[int, int]], view: View) -> torch.Tensor:
    """(B, C, S, S) model frames with each frame's unpadded top-left (h, w) part of ``sizes`` flipped as
    ``view`` says (a new tensor; the padding stays at bottom/right). The identity view returns ``frames``."""
    flip_x, flip_y = view
    if not (flip_x or flip_y):
        return frames
    dims = [d for d, on in ((-1, flip_x), (-2, flip_y)) if on]
    out = frames.clone()
    for j, (height, width) in enumerate(sizes):
        out[j, :, :height, :width] = torch.flip(frames[j, :, :height, :width], dims)
    return out


def flip_prompts(prompts: list[Prompt], size: tuple[int, int], view: View) -> list[Prompt]:
    """Framed prompts of a frame whose unpadded part is (h, w) = ``size``, mirrored as ``view`` says."""
    if not any(view):
        return prompts
    return [p.mirrored(size, x=view[0], y=view[1]) for p in prompts]


def unflip(probs: np.ndarray, view: View) -> np.ndarray:
    """(..., Y, X) probabilities of a mirrored view back on the unflipped slice grid."""
    if view[0]:
        probs = probs[..., ::-1]
    if view[1]:
        probs = probs[..., ::-1, :]
    return probs


def mean_of_views(per_view: list[np.ndarray]) -> np.ndarray:
    """Mean of the unflipped probabilities of the views (float32, C-contiguous)."""
    if len(per_view) == 1:
        return per_view[0]
    total = np.zeros(per_view[0].shape, dtype=np.float64)
    for probs in per_view:
        total += probs
    return (total / len(per_view)).astype(np.float32)
