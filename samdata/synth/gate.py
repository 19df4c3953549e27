"""The quality gate every generated pair passes before it may enter the store.

Per pair, against the real slices the generator learnt from (:func:`calibrate`), cheapest check first:
``empty``, label ``area`` and ``components`` within the real range, ``folding`` of the spatial transform,
``intensity_order`` of the tissues, ``memorised`` (a near-copy of a real slice). Per batch, a Fréchet
distance of full-resolution features (:mod:`samdata.synth.quality`) above ``frechet_max`` rejects the whole
batch. Every failure is a named reason in the report; a random-contrast source skips the order and Fréchet
checks, since it does not claim the real contrast.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
from scipy import ndimage

from samdata.errors import ValidationError
from samdata.synth.configs import GateConfig as GateConfig
from samdata.synth.quality import frechet_distance, image_features, nearest_distance, thumbnails

REASONS: tuple[str, ...] = ("empty", "area", "components", "folding", "intensity_order", "memorised", "frechet")
EIGHT = np.ones((3, 3), dtype=bool)
ORDER_MARGIN = 10.0  # real medians closer than this (0..255) are not ordered by the check
MIN_PIECE = 10  # components smaller than this (pixels) are specks, not counted by the components check


@dataclass(frozen=True)
class LabelRange:
    """What the real slices show of one label: area range (pixels), most components, median intensity."""

    min_area: int
    max_area: int
    max_components: int
    median: float


@dataclass(frozen=True)
class Reference:
    """Real-slice statistics the gate compares against."""

    thumbnails: np.ndarray
    features: np.ndarray
    labels: dict[int, LabelRange]
    nn_distance: float | None

    def describe(self) -> dict[str, Any]:
        """A JSON-safe summary."""
        return {
            "real_slices": int(len(self.thumbnails)),
            "real_nn_distance": self.nn_distance,
            "labels": {str(v): asdict(r) for v, r in self.labels.items()},
        }


@dataclass
class SampleVerdict:
    """One generated pair's fate: accepted, why not, and its scores."""

    accepted: bool
    reasons: list[str]
    scores: dict[str, float]


@dataclass
class GateReport:
    """A gated batch: verdicts per pair, counts by reason, the batch's Fréchet distances, thresholds, timing."""

    verdicts: list[SampleVerdict]
    frechet: float
    frechet_accepted: float
    thresholds: dict[str, Any]
    seconds: float
    reference: dict[str, Any] = field(default_factory=dict)
    batch_rejected: bool = False

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
        return {
            "generated": len(self.verdicts),
            "accepted": self.accepted,
            "rejected": self.rejected,
            "reasons": self.reasons(),
            "frechet": _json_float(self.frechet),
            "frechet_accepted": _json_float(self.frechet_accepted),
            "batch_rejected": self.batch_rejected,
            "thresholds": self.thresholds,
            "reference": self.reference,
            "seconds": self.seconds,
        }


def _json_float(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def count_components(mask: np.ndarray, min_pixels: int = 1) -> int:
    """Number of 8-connected components of a (H, W) bool mask with at least ``min_pixels`` pixels."""
    pieces, count = ndimage.label(mask, structure=EIGHT)
    if min_pixels <= 1 or count == 0:
        return int(count)
    return int((np.bincount(pieces.ravel(), minlength=count + 1)[1:] >= min_pixels).sum())


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """Tight box (x0, y0, x1, y1), exclusive ends, of a non-empty (H, W) bool mask."""
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def calibrate(config: GateConfig, real_images: np.ndarray, real_labels: np.ndarray) -> tuple[GateConfig, Reference]:
    """Statistics of the real (N, H, W) uint8 images and label maps, and ``config`` with its distance filled in."""
    real_images, real_labels = np.asarray(real_images), np.asarray(real_labels)
    thumbs = thumbnails(real_images)
    nn = float(np.median(nearest_distance(thumbs, thumbs, exclude_self=True))) if len(thumbs) > 1 else None
    ranges: dict[int, LabelRange] = {}
    for value in (int(v) for v in np.unique(real_labels) if v):
        areas, comps, pixels = [], [], []
        for image, label in zip(real_images, real_labels):
            mask = label == value
            if mask.any():
                areas.append(int(mask.sum()))
                comps.append(count_components(mask, MIN_PIECE))
                pixels.append(image[mask])
        ranges[value] = LabelRange(min(areas), max(areas), max(comps), float(np.median(np.concatenate(pixels))))
    if config.min_distance is None:
        config = replace(config, min_distance=config.distance_fraction * nn if nn is not None else 0.0)
    return config, Reference(thumbs, image_features(real_images, real_labels), ranges, nn)


def _label_reasons(
    label: np.ndarray,
    image: np.ndarray,
    config: GateConfig,
    reference: Reference,
    realistic: bool,
    scores: dict[str, float],
) -> list[str]:
    """Mask and intensity-order reasons for one (H, W) label map and image (scores filled in place)."""
    if not label.any():
        return ["empty"]
    reasons, medians = set(), {}
    for value, real in reference.labels.items():
        mask = label == value
        area = int(mask.sum())
        if area == 0:
            continue
        comps = count_components(mask, MIN_PIECE)
        scores[f"area_{value}"], scores[f"components_{value}"] = float(area), float(comps)
        if not (1 - config.area_slack) * real.min_area <= area <= (1 + config.area_slack) * real.max_area:
            reasons.add("area")
        if comps > (1 + config.component_slack) * real.max_components + 2:
            reasons.add("components")
        medians[value] = float(np.median(image[mask]))
    if realistic and config.intensity_order:
        for a in medians:
            for b in medians:
                ra, rb = reference.labels[a].median, reference.labels[b].median
                if ra - rb >= ORDER_MARGIN and medians[a] <= medians[b]:
                    reasons.add("intensity_order")
    return sorted(reasons)


def run_gate(
    images: np.ndarray,
    labels: np.ndarray | None,
    config: GateConfig,
    reference: Reference,
    *,
    jacobians: np.ndarray | None = None,
    realistic: bool = True,
) -> GateReport:
    """Gate generated (N, H, W) uint8 images with their label maps (None: image-only pairs) and, when the
    source has spatial transforms, their (N,) smallest Jacobian determinants. ``config`` from :func:`calibrate`."""
    started = time.perf_counter()
    images = np.asarray(images)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValidationError(f"gate needs images (N, H, W) uint8; got {images.shape} {images.dtype}")
    if labels is not None and np.shape(labels) != images.shape:
        raise ValidationError(f"gate needs label maps shaped like the images {images.shape}; got {np.shape(labels)}")
    verdicts = [SampleVerdict(True, [], {}) for _ in range(len(images))]
    if labels is not None:
        for verdict, image, label in zip(verdicts, images, labels):
            verdict.reasons += _label_reasons(np.asarray(label), image, config, reference, realistic, verdict.scores)
    if jacobians is not None:
        for verdict, jac in zip(verdicts, np.asarray(jacobians, dtype=np.float64)):
            verdict.scores["min_jacobian"] = float(jac)
            if jac <= config.min_jacobian:
                verdict.reasons.append("folding")
    distance = nearest_distance(thumbnails(images), reference.thumbnails) if len(images) else np.zeros(0)
    for verdict, dist in zip(verdicts, distance):
        verdict.scores["distance"] = float(dist)
        if config.min_distance is not None and dist < config.min_distance:
            verdict.reasons.append("memorised")
    feats = image_features(images, labels) if len(images) else np.zeros((0, reference.features.shape[1]))
    fid = frechet_distance(reference.features, feats)
    batch_rejected = bool(
        realistic and config.frechet_max is not None and math.isfinite(fid) and fid > config.frechet_max
    )
    for verdict in verdicts:
        if batch_rejected:
            verdict.reasons.append("frechet")
        verdict.accepted = not verdict.reasons
    kept = [v.accepted for v in verdicts]
    fid_ok = frechet_distance(reference.features, feats[kept]) if any(kept) else math.nan
    return GateReport(
        verdicts, fid, fid_ok, asdict(config), time.perf_counter() - started, reference.describe(), batch_rejected
    )
