"""The quality gate every generated pair passes before it may enter the store.

Checks, cheapest first; a pair is accepted only if it passes all that apply (a pair without a
mask, e.g. from an image-only medigan model, gets the image checks only):

1. ``mask``: each label's mask has ``min_area`` ≤ area ≤ ``max_area_fraction`` × slice area and at most
   ``max_components`` 8-connected components (``scipy.ndimage.label``); an empty map is rejected.
2. ``memorised``: the image's distance to its nearest real training slice (root-mean-square
   difference of intensities in [0, 1] after resizing both to 64 x 64) must be ≥ ``min_distance``.
3. ``consistency``: a segmenter (LiteMedSAM in the CLI) prompted with each label's tight box must
   reproduce that label's mask: Dice ≥ ``min_dice``.

The Fréchet distance between real and generated image features (the LiteMedSAM encoder's
embeddings, average-pooled, in the CLI) is reported for every batch; it gates nothing.

The segmenter and the feature extractor are injected callables (:data:`Segmenter`,
:data:`Featurizer`), so this module needs no model and no store. Thresholds left ``None`` are
calibrated on the real slices by :func:`calibrate`: ``min_dice`` from the segmenter's own Dice on
real slices (LiteMedSAM's zero-shot Dice varies by structure — 0.42 on white matter, 0.66 on brain
— so a fixed threshold would pass everything or nothing), ``min_distance`` from the real slices'
distances to each other.
"""

from __future__ import annotations

import math
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy import linalg, ndimage

from samdata.errors import ConfigError, ValidationError
from samdata.metrics import dice

#: images (N, H, W) uint8, boxes (N, 4) float x0, y0, x1, y1 (pixels, exclusive ends) → masks (N, H, W) bool
Segmenter = Callable[[np.ndarray, np.ndarray], np.ndarray]
#: images (N, H, W) uint8 → features (N, D) float
Featurizer = Callable[[np.ndarray], np.ndarray]
DISTANCE_SIDE = 64
REASONS: tuple[str, ...] = ("empty", "area", "components", "memorised", "consistency")


@dataclass(frozen=True)
class GateConfig:
    """Gate thresholds; ``None`` = calibrate on the real slices (see :func:`calibrate`).

    ``dice_fraction``: calibrated ``min_dice`` = this × the segmenter's median Dice on real slices.
    ``distance_fraction``: calibrated ``min_distance`` = this × the median nearest-neighbour distance
    among real slices (a fixed ``DEFAULT_MIN_DISTANCE`` when fewer than two real slices).
    """

    min_area: int = 20
    max_area_fraction: float = 0.6
    max_components: int | None = None
    min_dice: float | None = None
    min_distance: float | None = None
    dice_fraction: float = 0.8
    distance_fraction: float = 0.25
    consistency: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.min_area, bool) or not isinstance(self.min_area, int) or self.min_area < 1:
            raise ConfigError(f"gate min_area={self.min_area!r}; expected an integer >= 1 (pixels)")
        for key in ("max_area_fraction", "dice_fraction", "distance_fraction"):
            value = getattr(self, key)
            if not isinstance(value, int | float) or not 0 < value <= 1:
                raise ConfigError(f"gate {key}={value!r}; expected 0 < {key} <= 1")
        if self.max_components is not None and (not isinstance(self.max_components, int) or self.max_components < 1):
            raise ConfigError(f"gate max_components={self.max_components!r}; expected None or an integer >= 1")
        if self.min_dice is not None and not 0 <= self.min_dice <= 1:
            raise ConfigError(f"gate min_dice={self.min_dice!r}; expected None or 0 <= min_dice <= 1")
        if self.min_distance is not None and not 0 <= self.min_distance <= 1:
            raise ConfigError(f"gate min_distance={self.min_distance!r}; expected None or 0..1 (RMS intensity)")


DEFAULT_MIN_DISTANCE = 0.02
COMPONENT_SLACK = 2


@dataclass(frozen=True)
class Reference:
    """Real-slice statistics the gate compares against: downsampled images, features, calibrated values."""

    thumbnails: np.ndarray
    features: np.ndarray | None
    real_dice: tuple[float, ...] = ()
    real_components: int = 1
    real_nn_distance: float | None = None


@dataclass
class SampleVerdict:
    """One generated pair's fate: accepted, why not, and its scores."""

    accepted: bool
    reasons: list[str]
    scores: dict[str, float]


@dataclass
class GateReport:
    """A gated batch: verdicts per pair, counts by reason, the Fréchet distance, thresholds and timing."""

    verdicts: list[SampleVerdict]
    frechet: float
    frechet_accepted: float
    thresholds: dict[str, Any]
    seconds: float
    reference: dict[str, Any] = field(default_factory=dict)

    @property
    def accepted(self) -> int:
        """Number of accepted pairs."""
        return sum(v.accepted for v in self.verdicts)

    @property
    def rejected(self) -> int:
        """Number of rejected pairs."""
        return len(self.verdicts) - self.accepted

    def reasons(self) -> dict[str, int]:
        """Rejections per reason (a pair failing two checks counts under both)."""
        counts = Counter(r for v in self.verdicts for r in v.reasons)
        return {r: counts[r] for r in REASONS if counts[r]}

    def summary(self) -> dict[str, Any]:
        """A JSON-safe summary without per-pair verdicts."""
        return {"generated": len(self.verdicts), "accepted": self.accepted, "rejected": self.rejected,
                "reasons": self.reasons(), "frechet": _json_float(self.frechet),
                "frechet_accepted": _json_float(self.frechet_accepted), "thresholds": self.thresholds,
                "reference": self.reference, "seconds": self.seconds}


def _json_float(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


# ----------------------------------------------------------------------------------- measurements
def mask_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """Tight box (x0, y0, x1, y1), exclusive ends, of a non-empty (H, W) bool mask."""
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def count_components(mask: np.ndarray) -> int:
    """Number of 8-connected components of a (H, W) bool mask."""
    return int(ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))[1])


def thumbnails(images: np.ndarray, side: int = DISTANCE_SIDE) -> np.ndarray:
    """(N, H, W) uint8 images → (N, side*side) float32 in [0, 1] (area-averaged), for distances."""
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


def frechet_distance(real: np.ndarray, fake: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to (N, D) and (M, D) features (NaN if N or M < 2).

    ``|mu_r - mu_f|^2 + Tr(S_r + S_f - 2 (S_r S_f)^(1/2))``, as in FID (Heusel et al. 2017), with
    pytorch-fid's fix for a singular product (add 1e-6 to the diagonals and retry).
    """
    real, fake = np.asarray(real, dtype=np.float64), np.asarray(fake, dtype=np.float64)
    if len(real) < 2 or len(fake) < 2:
        return math.nan
    mu_r, mu_f = real.mean(0), fake.mean(0)
    s_r, s_f = np.atleast_2d(np.cov(real, rowvar=False)), np.atleast_2d(np.cov(fake, rowvar=False))
    with warnings.catch_warnings():  # few samples → singular covariances, handled below as pytorch-fid does
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(s_r @ s_f)
        if not np.isfinite(covmean).all():
            offset = np.eye(s_r.shape[0]) * 1e-6
            covmean = linalg.sqrtm((s_r + offset) @ (s_f + offset))
    covmean = np.real(covmean)
    return float(((mu_r - mu_f) ** 2).sum() + np.trace(s_r) + np.trace(s_f) - 2 * np.trace(covmean))


def object_dice(images: np.ndarray, labels: np.ndarray, values: tuple[int, ...], segment: Segmenter
                ) -> np.ndarray:
    """Segmenter Dice per (pair, label): (N, K) float, NaN where the label is absent from a pair."""
    out = np.full((len(images), len(values)), np.nan)
    jobs = [(i, k) for i in range(len(images)) for k, v in enumerate(values) if (labels[i] == v).any()]
    if not jobs:
        return out
    boxes = np.array([mask_box(labels[i] == values[k]) for i, k in jobs], dtype=np.float32)
    predicted = np.asarray(segment(images[[i for i, _ in jobs]], boxes))
    for (i, k), pred in zip(jobs, predicted):
        out[i, k] = dice(pred.astype(bool), labels[i] == values[k])
    return out


# ----------------------------------------------------------------------------------- calibration
def calibrate(config: GateConfig, real_images: np.ndarray, real_labels: np.ndarray, values: tuple[int, ...],
              segment: Segmenter | None, features: Featurizer | None) -> tuple[GateConfig, Reference]:
    """Fill the ``None`` thresholds of ``config`` from real (N, H, W) uint8 images and label maps."""
    thumbs = thumbnails(real_images)
    nn = float(np.median(nearest_distance(thumbs, thumbs, exclude_self=True))) if len(thumbs) > 1 else None
    comps = max((count_components(real_labels[i] == v) for i in range(len(real_labels)) for v in values), default=1)
    real_dice: tuple[float, ...] = ()
    if config.consistency and segment is not None:
        scores = object_dice(real_images, real_labels, values, segment)
        real_dice = tuple(float(v) for v in scores[np.isfinite(scores)])
    updates: dict[str, Any] = {}
    if config.max_components is None:
        updates["max_components"] = comps + COMPONENT_SLACK
    if config.min_distance is None:
        updates["min_distance"] = DEFAULT_MIN_DISTANCE if nn is None else config.distance_fraction * nn
    if config.min_dice is None and real_dice:
        updates["min_dice"] = config.dice_fraction * float(np.median(real_dice))
    reference = Reference(thumbs, None if features is None else np.asarray(features(real_images)),
                          real_dice, comps, nn)
    return replace(config, **updates), reference


# ----------------------------------------------------------------------------------- the gate
def _mask_reasons(label: np.ndarray, values: tuple[int, ...], config: GateConfig, scores: dict[str, float]
                  ) -> list[str]:
    """Degenerate-mask reasons for one (H, W) label map (scores filled in place)."""
    if not label.any():
        return ["empty"]
    reasons = []
    limit = config.max_area_fraction * label.size
    for value in values:
        mask = label == value
        area = int(mask.sum())
        if area == 0:
            continue
        comps = count_components(mask)
        scores[f"area_{value}"], scores[f"components_{value}"] = float(area), float(comps)
        if not config.min_area <= area <= limit:
            reasons.append("area")
        if config.max_components is not None and comps > config.max_components:
            reasons.append("components")
    return sorted(set(reasons))


def run_gate(images: np.ndarray, labels: np.ndarray | None, values: tuple[int, ...], config: GateConfig,
             reference: Reference, segment: Segmenter | None = None, features: Featurizer | None = None
             ) -> GateReport:
    """Gate generated (N, H, W) uint8 images and (N, H, W) label maps (None: image-only pairs).

    ``config`` should be calibrated (:func:`calibrate`); ``segment`` is needed when
    ``config.consistency`` is on and masks are given, ``features`` for the Fréchet distance.
    """
    started = time.perf_counter()
    images = np.asarray(images)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValidationError(f"gate needs images (N, H, W) uint8; got {images.shape} {images.dtype}")
    if labels is not None and np.shape(labels) != images.shape:
        raise ValidationError(f"gate needs label maps shaped like the images {images.shape}; got {np.shape(labels)}")
    if config.consistency and labels is not None and segment is None:
        raise ConfigError("gate consistency check is on but no segmenter was given; pass one or turn it off")
    verdicts = [SampleVerdict(True, [], {}) for _ in range(len(images))]
    if labels is not None:
        for verdict, label in zip(verdicts, labels):
            verdict.reasons += _mask_reasons(label, values, config, verdict.scores)
    distance = nearest_distance(thumbnails(images), reference.thumbnails)
    for verdict, dist in zip(verdicts, distance):
        verdict.scores["distance"] = float(dist)
        if config.min_distance is not None and dist < config.min_distance:
            verdict.reasons.append("memorised")
    if labels is not None and config.consistency and segment is not None:
        todo = [i for i, v in enumerate(verdicts) if not v.reasons]
        if todo:
            scores = object_dice(images[todo], np.asarray(labels)[todo], values, segment)
            for i, row in zip(todo, scores):
                worst = float(np.nanmin(row))
                verdicts[i].scores["dice"] = worst
                if config.min_dice is not None and worst < config.min_dice:
                    verdicts[i].reasons.append("consistency")
    fid = fid_ok = math.nan
    if features is not None and reference.features is not None:
        feats = np.asarray(features(images))
        fid = frechet_distance(reference.features, feats)
        fid_ok = frechet_distance(reference.features, feats[[not v.reasons for v in verdicts]])
    for verdict in verdicts:
        verdict.accepted = not verdict.reasons
    thresholds = {k: v for k, v in asdict(config).items()}
    ref = {"real_dice_median": float(np.median(reference.real_dice)) if reference.real_dice else None,
           "real_nn_distance": reference.real_nn_distance, "real_components_max": reference.real_components,
           "real_slices": int(len(reference.thumbnails))}
    return GateReport(verdicts, fid, fid_ok, thresholds, time.perf_counter() - started, ref)
