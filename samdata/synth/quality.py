"""Image statistics the gate compares at the store's own resolution: features, Fréchet distance, distances.

:func:`image_features` describes a slice by numbers a blurry or wrongly-scaled generator moves (foreground
intensity quantiles and share, mean gradient, band-pass detail), computed on the full grid, never a
thumbnail, so missing detail cannot hide; they need no model, so a gate is cheap. :func:`frechet_distance`
fits Gaussians to two feature sets (Heusel et al. 2017); with a handful of real slices a full covariance is
singular, so features are standardised by the real spread and the covariance taken diagonal.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

FEATURES: tuple[str, ...] = ("q10", "q50", "q90", "foreground", "gradient", "detail_1", "detail_2")
DISTANCE_SIDE = 64
SPREAD_FLOOR = 0.1  # smallest spread a feature is standardised by, as a fraction of its real mean


def image_features(images: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
    """(N, len(FEATURES)) float64 features of (N, H, W) uint8 images; the foreground is the labelled part of
    each slice (any label > 0) or, without labels, pixels above a tenth of the slice's 99th percentile."""
    x = np.asarray(images, dtype=np.float32) / 255.0
    if labels is not None:
        fg = np.asarray(labels) > 0
    else:
        fg = x > 0.1 * np.percentile(x.reshape(len(x), -1), 99, axis=1)[:, None, None]
    fg[~fg.reshape(len(fg), -1).any(axis=1)] = True  # an empty foreground: describe the whole slice
    gy, gx = np.gradient(x, axis=(1, 2))
    blur1 = ndimage.gaussian_filter(x, sigma=(0, 1.0, 1.0), mode="nearest")
    blur2 = ndimage.gaussian_filter(x, sigma=(0, 2.0, 2.0), mode="nearest")
    weight = fg.astype(np.float32)
    count = weight.sum(axis=(1, 2))

    def masked_mean(values: np.ndarray) -> np.ndarray:
        return (values * weight).sum(axis=(1, 2)) / count

    quantiles = (
        np.stack([np.quantile(x[i][fg[i]], (0.1, 0.5, 0.9)) for i in range(len(x))]) if len(x) else np.zeros((0, 3))
    )
    columns = [
        quantiles[:, 0],
        quantiles[:, 1],
        quantiles[:, 2],
        count / fg[0].size,
        masked_mean(np.sqrt(gx**2 + gy**2)),
        masked_mean(np.abs(x - blur1)),
        masked_mean(np.abs(blur1 - blur2)),
    ]
    return np.stack(columns, axis=1).astype(np.float64).reshape(len(x), len(FEATURES))


def frechet_distance(real: np.ndarray, fake: np.ndarray) -> float:
    """Fréchet distance of diagonal Gaussians fitted to (N, D) real and (M, D) generated features, each
    feature standardised by the real spread (at least ``SPREAD_FLOOR`` × its real mean), divided by D: 0 for the same
    distribution, about 1 when every feature is one real spread off. NaN without features."""
    real, fake = np.asarray(real, dtype=np.float64), np.asarray(fake, dtype=np.float64)
    if len(real) < 1 or len(fake) < 1:
        return math.nan
    mu_r, mu_f = real.mean(0), fake.mean(0)
    s_r = real.std(0) if len(real) > 1 else np.zeros(real.shape[1])
    s_f = fake.std(0) if len(fake) > 1 else np.zeros(fake.shape[1])
    scale = np.maximum(s_r, np.maximum(SPREAD_FLOOR * np.abs(mu_r), 1e-6))
    return float((((mu_r - mu_f) / scale) ** 2 + ((s_r - s_f) / scale) ** 2).mean())


def thumbnails(images: np.ndarray, side: int = DISTANCE_SIDE) -> np.ndarray:
    """(N, H, W) uint8 images → (N, side*side) float32 in [0, 1] (area-averaged), for memorisation distances."""
    x = torch.from_numpy(np.asarray(images, dtype=np.float32) / 255.0)[:, None]
    return F.interpolate(x, size=(side, side), mode="area").flatten(1).numpy()


def nearest_distance(candidates: np.ndarray, reals: np.ndarray, exclude_self: bool = False) -> np.ndarray:
    """RMS distance of each (N, D) candidate thumbnail to its nearest (M, D) real one ((N,) float)."""
    c = torch.from_numpy(np.asarray(candidates, dtype=np.float64))
    r = torch.from_numpy(np.asarray(reals, dtype=np.float64))
    d = torch.cdist(c, r) / math.sqrt(c.shape[1])
    if exclude_self:
        d.fill_diagonal_(math.inf)
    return d.min(dim=1).values.numpy()
