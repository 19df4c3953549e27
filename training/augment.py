"""Slice transforms for training: the augmentation registry (TorchIO) and the resize to the model frame.

A slice goes to TorchIO as a 2D image (C, Y, X, 1); spatial transforms move image and label together,
intensity ones touch the image only, and transforms run with ``copy=False`` because TorchIO's deep copy of
the subject would dominate the cost of a flip. TorchIO draws from torch's global generator, so
:class:`Augment` runs it under ``fork_rng`` seeded from the caller's numpy Generator: same state, same
augmentation. ``elastic`` (SimpleITK B-spline resampling per channel) costs far more than the others
(BENCHMARKS.md, "Augmentation cost"): it suits small sets and many workers only. :func:`resize_pad` frames
images by torch bilinear and masks by nearest-exact numpy indexing, measured faster than ``interpolate`` on
CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    import torchio

from samdata.errors import ValidationError, unknown_name
from samdata.prompts import frame_shape


@dataclass(frozen=True)
class AugmentEntry:
    """One registered augmentation: a factory of its TorchIO transform, a summary, whether it moves pixels,
    and whether its outcomes are a few fixed views of the slice (``finite``: a flip), so that the frozen
    encoder prefix of each view can be cached."""

    build: Callable[[], torchio.Transform]
    summary: str
    spatial: bool
    finite: bool = False


def tio():
    """torchio, imported on first use: it pulls in SimpleITK and nibabel, which loader-only users skip."""
    import torchio

    return torchio


AUGMENTS: MappingProxyType[str, AugmentEntry] = MappingProxyType(
    {
        "flip": AugmentEntry(
            lambda: tio().RandomFlip(axes=(0, 1), flip_probability=0.5, copy=False),
            "flip up-down and left-right, each with probability 0.5",
            True,
            finite=True,
        ),
        "affine": AugmentEntry(
            lambda: tio().RandomAffine(
                scales=(0.9, 1.1, 0.9, 1.1, 1.0, 1.0),
                degrees=(0, 0, 0, 0, -15, 15),
                translation=(-8, 8, -8, 8, 0, 0),
                default_pad_value=0.0,
                copy=False,
            ),
            "in-plane scale 0.9-1.1, rotation +-15 deg, shift +-8 px, zero fill",
            True,
        ),
        "elastic": AugmentEntry(
            lambda: tio().RandomElasticDeformation(
                num_control_points=(7, 7, 5), max_displacement=(8, 8, 0), locked_borders=2, copy=False
            ),
            "B-spline elastic deformation, 7x7 control points, up to 8 px (slow: see BENCHMARKS.md)",
            True,
        ),
        "bias": AugmentEntry(
            lambda: tio().RandomBiasField(coefficients=0.3, order=3, copy=False),
            "smooth multiplicative bias field (MR-like), polynomial order 3",
            False,
        ),
        "noise": AugmentEntry(
            lambda: tio().RandomNoise(mean=0.0, std=(0.0, 0.03), copy=False),
            "Gaussian noise, sd up to 0.03 of the [0, 1] range",
            False,
        ),
        "remap": AugmentEntry(
            lambda: tio().Lambda(remap_intensities, types_to_apply=[tio().INTENSITY]),
            "random intensity remapping curve (MONAI IntensityRemap, its defaults) with probability 0.5: "
            "new, even inverted, contrasts",
            False,
        ),
    }
)

REMAP_PROBABILITY = 0.5


def remap_intensities(tensor: torch.Tensor) -> torch.Tensor:
    """MONAI's ``RandIntensityRemap`` (Hesse et al. 2020: a smoothed random curve plus a +-0.7 slope, so
    contrasts change and may invert) with its defaults, applied to all channels alike (they are neighbour
    slices of one scan) and drawn from torch's generator, which :class:`Augment` seeds."""
    from monai.transforms import IntensityRemap

    if float(torch.rand(())) >= REMAP_PROBABILITY:
        return tensor
    slope = 0.7 if float(torch.rand(())) < 0.5 else -0.7
    remap = IntensityRemap(slope=slope)
    remap.set_random_state(int(torch.randint(2**31 - 1, ())))
    return remap(tensor).as_subclass(torch.Tensor).to(tensor.dtype)


def augment_names() -> tuple[str, ...]:
    """Names of the registered augmentations."""
    return tuple(AUGMENTS)


def augment_entry(name: str) -> AugmentEntry:
    """The registry entry of ``name``; unknown names raise a RegistryError listing the valid ones."""
    try:
        return AUGMENTS[name]
    except KeyError as err:
        raise unknown_name("augmentation", name, tuple(AUGMENTS)) from err


class Augment:
    """The named augmentations in registry order (spatial before intensity), applied to one slice."""

    def __init__(self, names: tuple[str, ...]) -> None:
        entries = {name: augment_entry(name) for name in names}
        order = [n for n in AUGMENTS if n in entries and entries[n].spatial]
        order += [n for n in AUGMENTS if n in entries and not entries[n].spatial]
        self.names = tuple(order)
        self.finite = all(entries[n].finite for n in order)
        self._transform = tio().Compose([entries[n].build() for n in order], copy=False)

    def __call__(self, image: np.ndarray, label: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Augment (C, Y, X) uint8 image and (Y, X) integer label: ((C, Y, X) float32 in [0, 1], (Y, X) int64)."""
        out_image, out_label, _ = self.apply(image, label, rng)
        return out_image, out_label

    def apply(
        self, image: np.ndarray, label: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """As :meth:`__call__`, plus the view drawn when every augmentation is ``finite``: bit 0 set when the
        rows were flipped (up-down), bit 1 when the columns were (left-right), so 0..3; -1 otherwise."""
        t = tio()
        subject = t.Subject(
            image=t.ScalarImage(tensor=torch.from_numpy(image[..., None].astype(np.float32) / 255.0)),
            label=t.LabelMap(tensor=torch.from_numpy(label[None, :, :, None].astype(np.int64))),
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(rng.integers(2**63 - 1)))
            out = self._transform(subject)
        img = out["image"].data[..., 0].clamp_(0.0, 1.0).numpy().astype(np.float32, copy=False)
        lab = out["label"].data[0, ..., 0].round().to(torch.int64).numpy()
        view = 0 if self.finite else -1
        if self.finite:
            for transform in out.get_applied_transforms():  # TorchIO records each Flip with its axes
                for axis in getattr(transform, "axes", ()):
                    view ^= 1 << int(axis)
        return img, lab, view


def resize_pad(image: np.ndarray, size: int, channels: int = 3, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(C, Y, X) uint8 (0..255) or float32 ([0, 1]) slice, C = 1 or ``channels`` → (channels, size, size)
    float32 in [0, 1] (or uint8 0..255): longest side resized to ``size`` (bilinear, antialiased when
    shrinking), zero padding at bottom/right. One channel is repeated as a view (channel stride 0, no
    copy): :func:`training.collate.collate_items` keeps it one channel through DataLoader workers;
    ``torch.stack`` or ``.contiguous()`` make it three. Read-only in place (torch refuses writes)."""
    count, height, width = image.shape
    if count not in (1, channels):
        raise ValidationError(f"resize_pad: image has {count} channels; expected 1 or {channels}")
    new_h, new_w = frame_shape((height, width), size)
    source = torch.from_numpy(image)
    if dtype == torch.uint8 and image.dtype != np.uint8:
        source = source.mul(255.0).round_().to(torch.uint8)
    if (new_h, new_w) != (height, width):
        source = F.interpolate(
            source[None], size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=new_h < height
        )[0]
    padded = (new_h, new_w) != (size, size)
    out = (torch.zeros if padded else torch.empty)((count, size, size), dtype=dtype)
    out[:, :new_h, :new_w] = source  # converts dtype
    if dtype != torch.uint8 and source.dtype == torch.uint8:
        out.mul_(1.0 / 255.0)
    return out.expand(channels, size, size) if count == 1 else out


def pixel_frames(images: torch.Tensor) -> torch.Tensor:
    """(B, C, S, S) frames from :func:`resize_pad` on the 0..255 scale the models' ``preprocess`` takes:
    uint8 as they are, float32 in [0, 1] times 255."""
    return images if images.dtype == torch.uint8 else images * 255.0


@lru_cache(maxsize=64)
def _nearest_index(source: int, target: int) -> np.ndarray:
    """Source pixel of each of ``target`` output pixels under nearest-exact resizing (pixel centres)."""
    return np.minimum(((np.arange(target) + 0.5) * (source / target)).astype(np.int64), source - 1)


def resize_pad_mask(mask: np.ndarray, size: int, dtype: type = np.float32) -> torch.Tensor:
    """(Y, X) bool mask → (1, size, size) {0, 1} of ``dtype``: nearest-exact resize, zero padding at bottom/right."""
    height, width = mask.shape
    new_h, new_w = frame_shape((height, width), size)
    out = np.zeros((1, size, size), dtype=dtype)
    if (new_h, new_w) == (height, width):
        out[0, :height, :width] = mask
    else:
        out[0, :new_h, :new_w] = mask[np.ix_(_nearest_index(height, new_h), _nearest_index(width, new_w))]
    return torch.from_numpy(out)
