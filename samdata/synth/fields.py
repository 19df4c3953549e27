"""Smooth spatial transforms of 2D slices, batched in torch: random fields, affines, warps, Jacobians.

A transform is kept as source coordinates, a (N, H, W, 2) tensor of where each output pixel samples, so
image and label map warp with the same field and agree by construction. Random fields are control-grid
displacements upsampled bicubically (lab2im / SynthSeg); each sample draws from its own numpy Generator,
so sample k is the same pair whatever batch it is drawn in. Written with ``grid_sample`` rather than
TorchIO's ``RandomElasticDeformation`` / ``RandomAffine``: those resample one subject at a time through
SimpleITK, an order of magnitude slower per slice (BENCHMARKS.md, ``bench/synth_speed.py``), and expose no
field to check for folding.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def identity(height: int, width: int, n: int = 1) -> torch.Tensor:
    """(n, H, W, 2) source coordinates of the identity: pixel (x, y) samples (x, y)."""
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32), indexing="ij"
    )
    return torch.stack([xs, ys], dim=-1).expand(n, height, width, 2).clone()


def control_field(
    rng: np.random.Generator, shape: tuple[int, int], spacing: tuple[float, float], max_mm: float, control_mm: float
) -> np.ndarray:
    """(2, gy, gx) control-point displacements in pixels (dx, dy), uniform in ±``max_mm`` per axis, on a grid
    with about ``control_mm`` between points (at least 3 x 3) over a slice of ``shape`` = (H, W)."""
    height, width = shape
    sx, sy = spacing
    gx = max(3, int(math.ceil(width * sx / control_mm)) + 1)
    gy = max(3, int(math.ceil(height * sy / control_mm)) + 1)
    field = rng.uniform(-1.0, 1.0, size=(2, gy, gx)) * max_mm
    field[0] /= sx
    field[1] /= sy
    return field.astype(np.float32)


def upsample_field(control: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """(N, 2, gy, gx) control displacements → (N, 2, H, W) dense displacements (bicubic, corners aligned)."""
    return F.interpolate(control, size=shape, mode="bicubic", align_corners=True)


def affine_matrix(
    rng: np.random.Generator, rotation_deg: float, scale: float, shift_mm: float, spacing: tuple[float, float]
) -> np.ndarray:
    """(2, 3) output→source affine in pixels about the origin: rotation U(±deg), per-axis scale
    U(1 ± scale), shift U(±mm). Apply it to coordinates centred on the slice centre."""
    angle = math.radians(rng.uniform(-rotation_deg, rotation_deg)) if rotation_deg else 0.0
    sx_scale, sy_scale = rng.uniform(1 - scale, 1 + scale, size=2) if scale else (1.0, 1.0)
    shift = rng.uniform(-shift_mm, shift_mm, size=2) if shift_mm else np.zeros(2)
    cos, sin = math.cos(angle), math.sin(angle)
    linear = np.array([[cos, -sin], [sin, cos]]) @ np.diag([1.0 / sx_scale, 1.0 / sy_scale])
    return np.hstack([linear, [[shift[0] / spacing[0]], [shift[1] / spacing[1]]]]).astype(np.float32)


def apply_affine(coords: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
    """(N, H, W, 2) coordinates mapped by (N, 2, 3) affines about the slice centre (one batched
    matrix product with the centring folded into the offset)."""
    n, height, width = coords.shape[:3]
    centre = torch.tensor([(width - 1) / 2, (height - 1) / 2], dtype=coords.dtype)
    linear = matrices[:, :, :2].to(coords.dtype)
    offset = matrices[:, :, 2].to(coords.dtype) + centre - linear @ centre
    moved = torch.baddbmm(offset[:, None, :], coords.reshape(n, -1, 2), linear.transpose(1, 2))
    return moved.view(n, height, width, 2)


def _normalised(coords: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Pixel coordinates → grid_sample's [-1, 1] (corners aligned)."""
    out = coords.clone()
    out[..., 0].mul_(2.0 / max(width - 1, 1))
    out[..., 1].mul_(2.0 / max(height - 1, 1))
    return out.sub_(1.0)


def sample_field(field: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Values of (N, C, H, W) ``field`` at (N, h, w, 2) pixel ``coords`` (bilinear, border values outside)."""
    height, width = field.shape[-2:]
    grid = _normalised(coords, height, width)
    return F.grid_sample(field, grid, mode="bilinear", padding_mode="border", align_corners=True)


def warp(images: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) float images sampled at (N, h, w, 2) pixel coordinates (bilinear, zeros outside)."""
    height, width = images.shape[-2:]
    grid = _normalised(coords, height, width)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def warp_nearest(labels: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """(N, H, W) int64 maps sampled at (N, h, w, 2) pixel coordinates by nearest neighbour (0 outside)."""
    height, width = labels.shape[-2:]
    grid = _normalised(coords, height, width)
    return (
        F.grid_sample(
            labels[:, None].to(torch.float32), grid, mode="nearest", padding_mode="zeros", align_corners=True
        )[:, 0]
        .round()
        .to(torch.int64)
    )


def warp_labels(labels: torch.Tensor, coords: torch.Tensor, classes: int, chunk: int = 8) -> torch.Tensor:
    """(N, H, W) int64 class maps (0..classes-1) warped to (N, h, w) int64: each class's indicator is
    resampled bilinearly and the largest wins (smoother boundaries than nearest neighbour). Outside the
    slice counts as class 0, as the zero-filled image there does; ties go to the lower class. Indicators
    go through ``grid_sample`` ``chunk`` classes at a time as channels (the interpolation weights are
    computed once per pixel for all of them), keeping the running best between chunks."""
    height, width = labels.shape[-2:]
    grid = _normalised(coords, height, width)
    best_value = best = total = None
    for first in range(1, classes, chunk):
        ids = torch.arange(first, min(first + chunk, classes), dtype=labels.dtype)
        indicators = (labels[:, None] == ids[None, :, None, None]).to(torch.float32)
        values = F.grid_sample(indicators, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
        value, arg = values.max(dim=1)  # ties: the first (lowest) class of the chunk
        arg += first
        if best is None:
            best_value, best, total = value, arg, values.sum(dim=1)
            continue
        wins = value > best_value
        best_value = torch.where(wins, value, best_value)
        best = torch.where(wins, arg, best)
        total += values.sum(dim=1)
    if best is None:
        return torch.zeros((labels.shape[0], *coords.shape[1:3]), dtype=torch.int64)
    best.masked_fill_(1.0 - total >= best_value, 0)  # background: whatever no other class covers
    return best


def jacobian_det(coords: torch.Tensor) -> torch.Tensor:
    """(N, H-1, W-1) determinant of the Jacobian of (N, H, W, 2) source coordinates (forward differences);
    <= 0 where the transform folds."""
    dx = coords[:, :-1, 1:] - coords[:, :-1, :-1]  # d(source)/d(x)
    dy = coords[:, 1:, :-1] - coords[:, :-1, :-1]  # d(source)/d(y)
    return dx[..., 0] * dy[..., 1] - dx[..., 1] * dy[..., 0]
