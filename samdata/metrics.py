"""Segmentation metrics of a predicted object against its reference: Dice, IoU, NSD, HD95 and MAE.

Masks are bool arrays (Y, X) or (Z, Y, X) with ``spacing`` in mm along the same axes; the surface metrics
are MONAI's (boundary pixels counted, as in MedSAM's evaluation; HD95 symmetric). MONAI returns NaN when
either mask is empty, which would drop exactly the failures from a mean, so such pairs never reach it: both
empty score 1 (HD95 0), one empty scores 0 with HD95 = the array's diagonal in mm, a finite worst case as
BraTS-style evaluations use. MAE compares foreground probabilities with the {0, 1} reference.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from monai.metrics import compute_hausdorff_distance, compute_surface_dice

from samdata.errors import ConfigError, ValidationError

METRICS: tuple[str, ...] = ("dice", "iou", "nsd", "hd95", "mae")
DEFAULT_TOLERANCE_MM = 2.0  # MedSAM's NSD tolerance


@dataclass(frozen=True)
class MetricConfig:
    """NSD ``tolerance_mm`` and the probability ``threshold`` above which a pixel is predicted foreground."""

    tolerance_mm: float = DEFAULT_TOLERANCE_MM
    threshold: float = 0.5

    def __post_init__(self) -> None:
        if not (
            isinstance(self.tolerance_mm, int | float) and math.isfinite(self.tolerance_mm) and self.tolerance_mm >= 0
        ):
            raise ConfigError(f"NSD tolerance_mm={self.tolerance_mm!r}; expected a finite number >= 0 (mm)")
        if not (isinstance(self.threshold, int | float) and 0.0 <= self.threshold < 1.0):
            raise ConfigError(f"probability threshold={self.threshold!r}; expected 0 <= threshold < 1")


def _pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Check two masks of one 2D/3D shape and return them as bool (nonzero = object)."""
    pred_arr, gt_arr = np.asarray(pred), np.asarray(gt)
    if pred_arr.shape != gt_arr.shape or pred_arr.ndim not in (2, 3):
        raise ValidationError(
            f"metrics need prediction and reference masks of one 2D or 3D shape; "
            f"got {pred_arr.shape} and {gt_arr.shape}"
        )
    return pred_arr != 0, gt_arr != 0


def _spacing(spacing: Sequence[float], ndim: int) -> tuple[float, ...]:
    """Validate a per-axis spacing in mm for an ``ndim``-D mask."""
    values = tuple(float(v) for v in spacing)
    if len(values) != ndim or not all(math.isfinite(v) and v > 0 for v in values):
        raise ValidationError(
            f"spacing {tuple(spacing)} is not {ndim} positive finite numbers (mm per axis, in the mask's axis order)"
        )
    return values


def dice(pred: np.ndarray, gt: np.ndarray) -> float:
    """Dice 2|P∩G| / (|P| + |G|) of two bool masks; 1.0 when both are empty."""
    p, g = _pair(pred, gt)
    total = int(p.sum()) + int(g.sum())
    return 1.0 if total == 0 else 2.0 * int((p & g).sum()) / total


def iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """IoU |P∩G| / |P∪G| (= TP / (TP + FP + FN)) of two bool masks; 1.0 when both are empty."""
    p, g = _pair(pred, gt)
    union = int((p | g).sum())
    return 1.0 if union == 0 else int((p & g).sum()) / union


def mae(prob: np.ndarray, gt: np.ndarray) -> float:
    """Mean absolute error of foreground probabilities in [0, 1] against the bool reference, over all pixels."""
    p = np.asarray(prob, dtype=np.float64)
    g = np.asarray(gt) != 0
    if p.shape != g.shape:
        raise ValidationError(f"MAE needs probabilities shaped like the reference; got {p.shape} and {g.shape}")
    return float(np.abs(p - g).mean())


def diagonal_mm(shape: Sequence[int], spacing: Sequence[float]) -> float:
    """Length in mm of the diagonal of an array of ``shape`` with ``spacing``: the HD95 of a one-sided miss."""
    return float(math.sqrt(sum((n * s) ** 2 for n, s in zip(shape, spacing, strict=True))))


def _monai_pair(pred: np.ndarray, gt: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """(1, 1, *shape) float tensors, the single-channel one-hot layout MONAI expects."""
    return (torch.from_numpy(pred[None, None].astype(np.float32)), torch.from_numpy(gt[None, None].astype(np.float32)))


def surface_dice(
    pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float], tolerance_mm: float = DEFAULT_TOLERANCE_MM
) -> float:
    """Normalised surface Dice at ``tolerance_mm`` of two bool masks with per-axis ``spacing`` (mm)."""
    p, g = _pair(pred, gt)
    sp = _spacing(spacing, p.ndim)
    if not p.any() or not g.any():
        return float(p.any() == g.any())
    y_pred, y = _monai_pair(p, g)
    with warnings.catch_warnings():  # MONAI 1.5+ passes its own deprecated argument internally
        warnings.simplefilter("ignore", FutureWarning)
        value = compute_surface_dice(y_pred, y, [float(tolerance_mm)], include_background=True, spacing=list(sp))
    return float(value[0, 0])


def hd95(pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float]) -> float:
    """Symmetric 95th-percentile Hausdorff distance (mm) of two bool masks; see the module docstring for empties."""
    p, g = _pair(pred, gt)
    sp = _spacing(spacing, p.ndim)
    if not p.any() and not g.any():
        return 0.0
    if not p.any() or not g.any():
        return diagonal_mm(p.shape, sp)
    y_pred, y = _monai_pair(p, g)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        value = compute_hausdorff_distance(y_pred, y, include_background=True, percentile=95, spacing=list(sp))
    return float(value[0, 0])


def object_metrics(
    prob: np.ndarray, gt: np.ndarray, spacing: Sequence[float], config: MetricConfig = MetricConfig()
) -> dict[str, float]:
    """All of :data:`METRICS` plus areas for one object: ``prob`` foreground probabilities, ``gt`` bool, same shape."""
    p = np.asarray(prob, dtype=np.float32)
    g = np.asarray(gt) != 0
    pred = p > config.threshold
    return {
        "dice": dice(pred, g),
        "iou": iou(pred, g),
        "nsd": surface_dice(pred, g, spacing, config.tolerance_mm),
        "hd95": hd95(pred, g, spacing),
        "mae": mae(p, g),
        "gt_area": int(g.sum()),
        "pred_area": int(pred.sum()),
    }
