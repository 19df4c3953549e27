"""Per-case, per-label scores of a predicted label map against its reference, and nnU-Net v2's summary.json.

A case's label maps are compared label by label on one grid with ``spacing`` in mm (the source file's grid for
a volume; a 2D image, one slice thick, is scored as a 2D image). Each label gets nnU-Net v2's counts and
scores (``Dice``, ``IoU``, ``TP``, ``FP``, ``FN``, ``TN``, ``n_pred``, ``n_ref``) plus ``NSD`` (normalised
surface Dice at ``tolerance_mm``) and ``HD95`` (mm), the surface ones MONAI's
(:func:`samdata.metrics.surface_dice`, :func:`samdata.metrics.hd95`, with ``spacing``).

Empty masks follow nnU-Net: a label absent from both reference and prediction scores Dice = IoU = NaN, and
so NSD = HD95 = NaN, and the means skip it (``np.nanmean``: the case does not count for that label). Present
in one only: Dice = IoU = NSD = 0 and HD95 = the grid's diagonal in mm (:func:`samdata.metrics.diagonal_mm`,
the finite worst case the per-slice scores use too; MONAI alone would give inf or NaN). ``foreground_mean``
is the plain mean of the per-label means, NaN if one of them is (as nnU-Net's).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from samdata.errors import ValidationError
from samdata.metrics import hd95, surface_dice

#: nnU-Net v2's per-label keys, then the surface scores samdata adds
CASE_METRICS: tuple[str, ...] = ("Dice", "IoU", "FP", "TP", "FN", "TN", "n_pred", "n_ref", "NSD", "HD95")
EMPTY_CASES = (
    "nnU-Net's rule: a label absent from both reference and prediction scores Dice = IoU = NSD = HD95 = NaN "
    "and is left out of that label's mean (nanmean); in one only: Dice = IoU = NSD = 0 and HD95 = the "
    "grid's diagonal in mm"
)


def squeeze_flat(array: np.ndarray, spacing: Sequence[float]) -> tuple[np.ndarray, tuple[float, ...]]:
    """Drop the axes of length 1 of a 3D ``array`` and their ``spacing``: a one-slice case (a 2D image) is
    scored in 2D, where a 3D surface would make every pixel boundary."""
    keep = [i for i, n in enumerate(array.shape) if n > 1]
    if len(keep) < 2:
        keep = list(range(array.ndim))[-2:]
    return array.reshape([array.shape[i] for i in keep]), tuple(float(spacing[i]) for i in keep)


def label_scores(
    pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float], tolerance_mm: float
) -> dict[str, float | int]:
    """:data:`CASE_METRICS` of one label: ``pred`` and ``ref`` bool masks of one 2D/3D shape, ``spacing`` mm."""
    p, g = np.asarray(pred, dtype=bool), np.asarray(ref, dtype=bool)
    if p.shape != g.shape:
        raise ValidationError(f"prediction shape {p.shape} differs from reference shape {g.shape}")
    tp, fp, fn = int((p & g).sum()), int((p & ~g).sum()), int((~p & g).sum())
    tn = int(p.size) - tp - fp - fn
    counts = {"FP": fp, "TP": tp, "FN": fn, "TN": tn, "n_pred": tp + fp, "n_ref": tp + fn}
    if tp + fp + fn == 0:
        nan = math.nan
        return {"Dice": nan, "IoU": nan, **counts, "NSD": nan, "HD95": nan}
    return {
        "Dice": 2 * tp / (2 * tp + fp + fn),
        "IoU": tp / (tp + fp + fn),
        **counts,
        "NSD": surface_dice(p, g, spacing, tolerance_mm),
        "HD95": hd95(p, g, spacing),
    }


def case_scores(
    pred: np.ndarray, ref: np.ndarray, labels: Sequence[int], spacing: Sequence[float], tolerance_mm: float
) -> dict[str, dict[str, float | int]]:
    """``{str(label): scores}`` of integer label maps ``pred`` and ``ref`` (one shape) for each of ``labels``;
    axes of length 1 are dropped first (:func:`squeeze_flat`)."""
    p, g = np.asarray(pred), np.asarray(ref)
    if p.shape != g.shape or len(spacing) != p.ndim:
        raise ValidationError(
            f"label maps of shapes {p.shape} and {g.shape} with spacing {tuple(spacing)}; expected one shape "
            "and one spacing per axis"
        )
    p, flat = squeeze_flat(p, spacing)
    g, _ = squeeze_flat(g, spacing)
    return {str(int(v)): label_scores(p == v, g == v, flat, tolerance_mm) for v in labels}


def summary(cases: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """nnU-Net v2's summary.json of per-case records ``{"metrics": {label: scores}, "prediction_file",
    "reference_file"}``: ``metric_per_case`` (as given), ``mean`` per label (nanmean over cases) and
    ``foreground_mean`` (mean of the label means)."""
    if not cases:
        raise ValidationError("a summary needs at least one case")
    labels = list(cases[0]["metrics"])
    names = list(next(iter(cases[0]["metrics"].values()))) if labels else list(CASE_METRICS)
    means: dict[str, dict[str, float]] = {}
    with warnings.catch_warnings():  # a label empty in every case has no mean: NaN, as nnU-Net's
        warnings.simplefilter("ignore", RuntimeWarning)
        for label in labels:
            means[label] = {m: float(np.nanmean([c["metrics"][label][m] for c in cases])) for m in names}
        foreground = {m: float(np.mean([means[k][m] for k in labels if k != "0"])) for m in names}
    return {"metric_per_case": [dict(c) for c in cases], "mean": means, "foreground_mean": foreground}
