"""Click prompts: ClickSAM-style spread clicks and corrective clicks from a predicted mask.

``clicks`` places k positive clicks by centroidal Voronoi (Lloyd) iterations over the object's pixels, each
the object pixel nearest its generator, so clicks are distinct and inside even non-convex objects; k follows
ClickSAM, ``min(max, floor(1 + 2 (log10(area) - 3)))``, at least 1, unless ``n`` fixes it. Objects over
``LLOYD_PIXELS`` iterate on a uniform sample of that many pixels (measured faster, same density;
BENCHMARKS.md). Lloyd is written here rather than via ``scipy.cluster.vq.kmeans2`` because that reports
emptied clusters through ``warnings`` (not thread-safe to silence under Dask threads); here an emptied cell
keeps its generator. ``corrective_click`` gives one click on a prediction's error (micro-sam, RITM).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import get_args

import numpy as np

from samdata.config import ClickMode
from samdata.errors import ConfigError, ValidationError
from samdata.prompts.prompt import Prompt
from samdata.prompts.regions import depth, interior_point, object_mask, pixels_xy, require_pixels
from samdata.spec import check_int

CORRECTIVE_MODES: tuple[str, ...] = get_args(ClickMode)
LLOYD_PIXELS = 8192  # larger objects run Lloyd on this many pixels drawn uniformly (same density)


@dataclass(frozen=True)
class ClickParams:
    """Keys of the ``clicks`` scheme: ``max`` clicks, a fixed count ``n`` (0 = by area), Lloyd ``iters``."""

    max_clicks: int = field(default=5, metadata={"key": "max"})
    n: int = 0
    iters: int = 10

    def __post_init__(self) -> None:
        check_int("clicks", "max", self.max_clicks, 1)
        check_int("clicks", "n", self.n, 0)
        check_int("clicks", "iters", self.iters, 0)


def clicksam_count(area: int, max_clicks: int = 5) -> int:
    """ClickSAM's click count for a region of ``area`` pixels: min(max, floor(1 + 2 (log10 area - 3))), >= 1."""
    if area < 1:
        return 1
    return int(max(1, min(max_clicks, math.floor(1 + 2 * (math.log10(area) - 3)))))


def _kmeans_pp(xy: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeds: (k, 2) float64 chosen among (P, 2) pixel coordinates ``xy``."""
    seeds = [xy[rng.integers(len(xy))]]
    d2 = ((xy - seeds[0]) ** 2).sum(axis=1)
    for _ in range(1, k):
        seeds.append(xy[rng.choice(len(xy), p=d2 / d2.sum())])
        d2 = np.minimum(d2, ((xy - seeds[-1]) ** 2).sum(axis=1))
    return np.array(seeds, dtype=np.float64)


def _nearest_generator(xy: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Index of the nearest of (k, 2) ``centres`` for each of (P, 2) points ``xy``: (P,) int."""
    d2 = (xy**2).sum(axis=1)[:, None] - 2.0 * xy @ centres.T + (centres**2).sum(axis=1)[None, :]
    return np.argmin(d2, axis=1)


def cvt_points(region: np.ndarray, k: int, rng: np.random.Generator, iters: int = 10) -> np.ndarray:
    """k distinct pixels spread over a (Y, X) bool region by Lloyd iterations: (k, 2) float32 (x, y)."""
    require_pixels(region, k, f"clicks:n={k} (object pixels)")
    xy = pixels_xy(region).astype(np.float64)
    sample = xy[rng.choice(len(xy), LLOYD_PIXELS, replace=False)] if len(xy) > LLOYD_PIXELS else xy
    centres = _kmeans_pp(sample, k, rng)
    for _ in range(iters):
        owner = _nearest_generator(sample, centres)
        counts = np.bincount(owner, minlength=k)[:, None]
        sums = np.stack([np.bincount(owner, weights=sample[:, axis], minlength=k) for axis in (0, 1)], axis=1)
        moved = np.where(counts > 0, sums / np.maximum(counts, 1), centres)
        if np.allclose(moved, centres):
            break
        centres = moved
    taken = np.zeros(len(xy), dtype=bool)
    clicks = np.empty((k, 2), dtype=np.float32)
    for j, centre in enumerate(centres):
        d2 = ((xy - centre) ** 2).sum(axis=1)
        d2[taken] = np.inf
        best = int(np.argmin(d2))
        taken[best] = True
        clicks[j] = xy[best]
    return clicks


def click_prompt(mask: np.ndarray, rng: np.random.Generator, params: ClickParams) -> Prompt:
    """Positive clicks spread over a (Y, X) bool object mask by Lloyd iterations."""
    obj = object_mask(mask, "clicks")
    k = params.n if params.n > 0 else clicksam_count(int(obj.sum()), params.max_clicks)
    clicks = cvt_points(obj, k, rng, params.iters)
    return Prompt(points=clicks, point_labels=np.ones(k, np.int8))


def _bool_pair(gt: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Check two (Y, X) masks of one shape and return them as bool (nonzero = object)."""
    gt_arr, pred_arr = np.asarray(gt), np.asarray(pred)
    if gt_arr.ndim != 2 or gt_arr.shape != pred_arr.shape:
        raise ValidationError(
            f"corrective_click needs gt and pred (Y, X) masks of one shape; got {gt_arr.shape} and {pred_arr.shape}"
        )
    return gt_arr != 0, pred_arr != 0


def corrective_click(gt: np.ndarray, pred: np.ndarray, rng: np.random.Generator, mode: str = "interior") -> Prompt:
    """One corrective click for a (Y, X) bool prediction ``pred`` of object ``gt``: label 1 in a false
    negative, 0 in a false positive.

    ``interior``: at the error pixel farthest from the error boundary (image border counts as
    boundary), i.e. the distance-transform maximum of the error component with the largest inscribed
    disc (see :func:`regions.interior_point` for plateaus); ties between FN and FP go to FN.
    ``random``: a pixel drawn uniformly from all error pixels (SlideSAM).
    With no error at all, a positive click inside ``gt`` (same mode), as micro-sam does.
    """
    if mode not in CORRECTIVE_MODES:
        raise ConfigError(f"corrective_click mode={mode!r}; expected one of {', '.join(CORRECTIVE_MODES)}")
    gt_b, pred_b = _bool_pair(gt, pred)
    fn, fp = gt_b & ~pred_b, pred_b & ~gt_b
    if not fn.any() and not fp.any():
        if not gt_b.any():
            raise ValidationError(
                f"corrective_click needs an error or an object; gt and pred {gt_b.shape} are both empty"
            )
        fn = gt_b
    if mode == "random":
        error = fn | fp
        xy = pixels_xy(error)[rng.integers(int(error.sum()))]
        label = int(fn[xy[1], xy[0]])
    else:
        label = int(depth(fn) >= depth(fp))
        xy = interior_point(fn if label else fp)[0]
    return Prompt(points=np.array([xy], dtype=np.float32), point_labels=np.array([label], np.int8))
