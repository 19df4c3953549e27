"""``labels2image``: SynthSeg-style images rendered from (deformed) label maps.

Each label of the real slices is split into intensity sub-classes (1-D k-means), the sub-class map is
deformed (:mod:`samdata.synth.deform`) and rendered as lab2im does: a Gaussian per sub-class, blur, bias
field, resolution change, gamma, noise. ``mode=near`` keeps the real intensities and tissue order;
``mode=random`` draws every contrast, so a model must segment by shape; ``strip`` draws a share of samples
skull-stripped; ``smooth`` clusters on a blurred image, so sub-classes are regions rather than pixel noise.
Written in batched torch rather than with TorchIO's ``RandomLabelsToImage`` + ``RandomBiasField`` +
``RandomBlur`` + ``RandomAnisotropy``: those transform one subject at a time and together cost several
times the per-pair budget on a 2-core CPU (BENCHMARKS.md, ``bench/synth_speed.py``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from samdata.errors import ConfigError, unknown_name
from samdata.synth import fields
from samdata.synth.deform import DeformGenerator, DeformParams
from samdata.synth.pairs import RealPairs
from samdata.synth.source import GeneratedBatch, content_hash, sample_rng

MODES: tuple[str, ...] = ("near", "random")
RENDER_STREAM = 1  # sample_rng stream of the intensities (stream 0 draws the shape, shared with deform)
STRIP_STREAM = 2  # sample_rng stream of the skull-stripping draw (its own, so strip=0 leaves images unchanged)


@dataclass(frozen=True)
class RenderParams:
    """How images are drawn from label maps (fractions are of the 0..255 range); ``deform``: the shapes."""

    mode: Literal["near", "random"] = "near"
    clusters: int = 3
    background_clusters: int = 2
    mean_jitter: float = 0.03
    sd_scale_min: float = 0.5
    sd_scale_max: float = 1.0
    random_sd_max: float = 0.08
    blur_max: float = 1.5
    bias: float = 0.1
    resolution: float = 0.3
    resolution_max: float = 2.5
    gamma: float = 0.1
    noise_max: float = 0.02
    strip: float = 0.0
    smooth: float = 0.0
    deform: DeformParams = field(default_factory=DeformParams)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise unknown_name("labels2image mode", self.mode, MODES)
        for key in ("clusters", "background_clusters"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 8:
                raise ConfigError(f"labels2image {key}={value!r}; expected an integer 1..8")
        for key in ("mean_jitter", "random_sd_max", "blur_max", "bias", "gamma", "noise_max"):
            if not 0 <= float(getattr(self, key)) <= 10:
                raise ConfigError(f"labels2image {key}={getattr(self, key)!r}; expected a number >= 0")
        if not 0 <= float(self.smooth) <= 8:
            raise ConfigError(f"labels2image smooth={self.smooth!r}; expected a Gaussian sigma 0..8 pixels")
        if not 0 <= float(self.strip) <= 1:
            raise ConfigError(f"labels2image strip={self.strip!r}; expected a probability 0..1")
        if not 0 < self.sd_scale_min <= self.sd_scale_max:
            raise ConfigError(
                f"labels2image sd scale {self.sd_scale_min}..{self.sd_scale_max}; expected 0 < min <= max"
            )
        if not 0 <= self.resolution <= 1 or self.resolution_max < 1:
            raise ConfigError(
                f"labels2image resolution={self.resolution} (probability 0..1), resolution_max="
                f"{self.resolution_max} (>= 1)"
            )


def kmeans_1d(values: np.ndarray, k: int, iterations: int = 20) -> np.ndarray:
    """(k,) sorted centres of 1-D ``values`` (quantile start, Lloyd iterations); repeats when values are few."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return np.zeros(k)
    centres = np.quantile(values, (np.arange(k) + 0.5) / k)
    for _ in range(iterations):
        nearest = np.abs(values[:, None] - centres[None]).argmin(1)
        for c in range(k):
            if (nearest == c).any():
                centres[c] = values[nearest == c].mean()
    return np.sort(centres)


@dataclass(frozen=True)
class SubClasses:
    """Intensity sub-classes of the labels: ``parent`` (C,) class index of each, ``mean``/``sd`` (C,) of its
    real pixels (0..255), and the (N, H, W) sub-class maps of the real slices."""

    parent: np.ndarray
    mean: np.ndarray
    sd: np.ndarray
    maps: torch.Tensor


def sub_classes(images: np.ndarray, classes: torch.Tensor, count: int, params: RenderParams) -> SubClasses:
    """Split each of ``count`` classes of (N, H, W) class maps into intensity sub-classes of the images.

    With ``params.smooth`` > 0 the pixels are assigned on the images blurred by that sigma (pixels), so that
    sub-classes are regions of the tissue rather than its pixel noise; their mean and sd stay the raw pixels'."""
    images = np.asarray(images, dtype=np.float32)
    if params.smooth > 0:
        from scipy.ndimage import gaussian_filter

        assign = gaussian_filter(images, sigma=(0, params.smooth, params.smooth), mode="nearest")
    else:
        assign = images
    class_np = classes.numpy()
    parent, mean, sd = [], [], []
    maps = np.zeros(class_np.shape, dtype=np.int64)
    rng = np.random.default_rng(0)  # subsampling only; fixed so that fitting is deterministic
    for c in range(count):
        inside = class_np == c
        pixels, keys = images[inside], assign[inside]
        k = params.background_clusters if c == 0 else params.clusters
        sample = keys if keys.size <= 200_000 else rng.choice(keys, 200_000, replace=False)
        centres = kmeans_1d(sample, k)
        nearest = np.abs(keys[:, None] - centres[None]).argmin(1) if keys.size else np.zeros(0, np.int64)
        maps[inside] = len(parent) + nearest
        for j in range(k):
            chosen = pixels[nearest == j]
            parent.append(c)
            mean.append(float(chosen.mean()) if chosen.size else float(centres[j]))
            sd.append(float(chosen.std()) if chosen.size > 1 else 0.0)
    return SubClasses(
        np.array(parent), np.array(mean, dtype=np.float32), np.array(sd, dtype=np.float32), torch.from_numpy(maps)
    )


def _blur(images: torch.Tensor, sigmas: np.ndarray, largest: float) -> torch.Tensor:
    """(n, H, W) images each blurred by its own Gaussian sigma (pixels; 0 = unchanged), separable; kernels span
    3 x ``largest`` (the params' bound, not the batch's, so a sample does not depend on its batch)."""
    radius = max(1, int(np.ceil(3 * largest)))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernels = torch.stack(
        [torch.exp(-(x**2) / (2 * max(s, 1e-3) ** 2)) if s > 0.05 else (x == 0).float() for s in sigmas]
    )
    kernels = kernels / kernels.sum(1, keepdim=True)
    n = len(images)
    padded = F.pad(images[None], (radius, radius, 0, 0), mode="replicate")
    rows = F.conv2d(padded, kernels.view(n, 1, 1, -1), groups=n)
    padded = F.pad(rows, (0, 0, radius, radius), mode="replicate")
    return F.conv2d(padded, kernels.view(n, 1, -1, 1), groups=n)[0]


def _resolution(image: torch.Tensor, axis: int, factor: float) -> torch.Tensor:
    """(H, W) image seen at ``factor`` times coarser sampling along ``axis`` (area down, linear up)."""
    height, width = image.shape
    size = [height, width]
    size[axis] = max(2, int(round(size[axis] / factor)))
    low = F.interpolate(image[None, None], size=tuple(size), mode="area")
    return F.interpolate(low, size=(height, width), mode="bilinear", align_corners=False)[0, 0]


class LabelsToImageGenerator:
    """The ``labels2image`` pair source: deformed label maps of ``reference`` rendered as new images."""

    kind = "labels2image"
    seeded = True

    def __init__(
        self,
        reference: RealPairs,
        params: RenderParams = RenderParams(),
        *,
        generator_id: str = "labels2image",
        shapes: DeformGenerator | None = None,
    ) -> None:
        self.params, self.generator_id = params, generator_id
        self.shapes = shapes or DeformGenerator(reference, params.deform, generator_id=generator_id)
        self.realistic = params.mode == "near"
        classes = self.shapes.classes.encode(self.shapes.label_maps)
        self.sub = sub_classes(reference.images, classes, len(self.shapes.classes), params)
        self._classes, self._parent = classes, torch.from_numpy(self.sub.parent)
        self._first = torch.tensor(
            [
                int(np.flatnonzero(self.sub.parent == c)[0])  # each tissue's first cluster
                for c in range(len(self.shapes.classes))
            ]
        )
        self.checkpoint_hash = content_hash(
            self.kind,
            {**asdict(params), "deform": asdict(self.shapes.params)},
            np.frombuffer(bytes.fromhex(self.shapes.checkpoint_hash), np.uint8),
        )
        self.description = f"samdata:{self.kind}:{params.mode}"

    @property
    def grid(self) -> tuple[int, int]:
        """(H, W) of the generated pairs."""
        return self.shapes.grid

    def _intensities(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Per sub-class (mean, sd) on 0..255 for one sample."""
        p, count = self.params, len(self.sub.parent)
        if p.mode == "random":
            return rng.uniform(0, 255, count), rng.uniform(0, p.random_sd_max * 255, count)
        return (
            self.sub.mean + rng.normal(0, p.mean_jitter * 255, count),
            self.sub.sd * rng.uniform(p.sd_scale_min, p.sd_scale_max, count),
        )

    def render(self, sub_maps: torch.Tensor, seed: int, indices: list[int]) -> np.ndarray:
        """(n, H, W) uint8 images drawn from (n, H, W) sub-class maps, sample k's intensities from ``(seed, k)``."""
        p = self.params
        n, height, width = sub_maps.shape
        rngs = [sample_rng(seed, k, RENDER_STREAM) for k in indices]
        drawn = [self._intensities(r) for r in rngs]
        means = torch.from_numpy(np.stack([m for m, _ in drawn]).astype(np.float32))
        sds = torch.from_numpy(np.stack([s for _, s in drawn]).astype(np.float32))
        stripped = torch.tensor([p.strip > 0 and sample_rng(seed, k, STRIP_STREAM).random() < p.strip for k in indices])
        if stripped.any():  # background sub-classes black (edges then blur as partial volume does)
            background = torch.from_numpy(self.sub.parent == 0)
            means[stripped[:, None] & background[None]] = 0.0
            sds[stripped[:, None] & background[None]] = 0.0
        flat = sub_maps.reshape(n, -1)
        noise = np.empty((n, height * width), dtype=np.float32)
        for row, r in zip(noise, rngs):
            r.standard_normal(dtype=np.float32, out=row)
        image = (means.gather(1, flat) + sds.gather(1, flat) * torch.from_numpy(noise)).view(n, height, width)
        image = _blur(image, np.array([r.uniform(0, p.blur_max) for r in rngs]), p.blur_max)
        bias = torch.from_numpy(np.stack([r.normal(0, p.bias, (1, 4, 4)) for r in rngs]).astype(np.float32))
        image = image * torch.exp(F.interpolate(bias, size=(height, width), mode="bicubic", align_corners=True)[:, 0])
        for i, r in enumerate(rngs):
            if r.random() < p.resolution:
                image[i] = _resolution(image[i], int(r.integers(2)), float(r.uniform(1, p.resolution_max)))
        gammas = torch.from_numpy(np.exp(np.array([r.normal(0, p.gamma) for r in rngs])).astype(np.float32))
        if p.mode == "random":
            lo = image.flatten(1).quantile(0.005, dim=1)[:, None, None]
            hi = image.flatten(1).quantile(0.995, dim=1)[:, None, None]
            unit = ((image - lo) / (hi - lo).clamp(min=1e-3)).clamp(0, 1)
        else:
            unit = (image / 255.0).clamp(0, 1)
        unit = unit ** gammas[:, None, None]
        noise = noise.reshape(n, height, width)
        for row, r in zip(noise, rngs):
            r.standard_normal(dtype=np.float32, out=row)
            row *= r.uniform(0, p.noise_max)
        unit = unit + torch.from_numpy(noise)
        if stripped.any():  # outside the brain exactly 0, as a brain mask leaves it
            outside = self._parent[sub_maps] == 0
            unit = torch.where(stripped[:, None, None] & outside, 0.0, unit)
        return (unit.clamp(0, 1) * 255).round().to(torch.uint8).numpy()

    def batch(self, seed: int, indices: list[int]) -> GeneratedBatch:
        """Samples ``indices`` of ``seed``: deformed label maps (as ``deform`` draws them) rendered anew."""
        shapes = self.shapes
        plan = shapes.plan(seed, indices)
        # the tissues as deform warps them (each class's indicator, bilinear); the intensity clusters
        # within a tissue by nearest neighbour (their borders are drawn over by blur and noise), moved
        # to the tissue's first cluster where a tissue border moved under them: 3 resampled channels
        # instead of one per cluster
        classes = shapes.warp_classes(plan, self._classes, len(shapes.classes))
        sub = fields.warp_nearest(self.sub.maps[torch.from_numpy(plan.sources)], plan.coords)
        sub = torch.where(self._parent[sub] == classes, sub, self._first[classes])
        recipes = tuple(
            {**{k: v for k, v in r.items() if k != "parents"}, "render": self.params.mode} for r in plan.recipes
        )
        return GeneratedBatch(
            self.render(sub, seed, indices),
            shapes.classes.decode(classes, shapes.dtype),
            plan.min_jacobian,
            shapes.parents(plan),
            recipes,
        )
