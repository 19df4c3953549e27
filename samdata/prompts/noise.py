"""Human-like noise on top of any scheme's prompt (keys accepted by every scheme).

``jitter_px`` moves each point by N(0, jitter_px) px per axis, then back to the right side of the boundary;
``misclick`` is the probability that a positive lands on the background pixel nearest to it;
``missed_edge`` is the probability that one box side cuts into the object by ``missed_frac`` of its extent
(at least 1 px, always leaving one object row or column). Mask prompts are unchanged, and a key at 0 draws
nothing, so adding ``jitter_px=0`` to a spec does not change its prompts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from samdata.prompts.boxes import clip_box
from samdata.prompts.prompt import Prompt
from samdata.prompts.regions import nearest_in, pixel_index, tight_box
from samdata.spec import check_float

NOISE_SCHEME = "noise"


@dataclass(frozen=True)
class PromptNoise:
    """The noise keys: point jitter sd (px), mis-click probability, missed-edge probability and depth."""

    jitter_px: float = 0.0
    misclick: float = 0.0
    missed_edge: float = 0.0
    missed_frac: float = 0.1

    def __post_init__(self) -> None:
        check_float(NOISE_SCHEME, "jitter_px", self.jitter_px, 0.0, 1e4)
        check_float(NOISE_SCHEME, "misclick", self.misclick, 0.0, 1.0)
        check_float(NOISE_SCHEME, "missed_edge", self.missed_edge, 0.0, 1.0)
        check_float(NOISE_SCHEME, "missed_frac", self.missed_frac, 0.0, 1.0)


def jitter_points(
    points: np.ndarray, labels: np.ndarray, obj: np.ndarray, rng: np.random.Generator, sd: float
) -> np.ndarray:
    """Gaussian-jitter (N, 2) points on a (Y, X) bool object, keeping positives in and negatives out."""
    xs, ys = pixel_index(points + rng.normal(0.0, sd, size=points.shape), obj.shape)
    out = np.stack([xs, ys], axis=1).astype(np.float64)
    pos = labels == 1
    if pos.any():
        out[pos] = nearest_in(obj, out[pos])
    if (~pos).any() and (~obj).any():
        out[~pos] = nearest_in(~obj, out[~pos])
    return out


def misclick_points(
    points: np.ndarray, labels: np.ndarray, obj: np.ndarray, rng: np.random.Generator, prob: float
) -> np.ndarray:
    """Move each positive of (N, 2) points, with probability ``prob``, to its nearest background pixel."""
    hit = (rng.random(len(points)) < prob) & (labels == 1)
    out = points.copy()
    if hit.any() and (~obj).any():
        out[hit] = nearest_in(~obj, points[hit])
    return out


def miss_edge(
    box: tuple[int, int, int, int], obj: np.ndarray, rng: np.random.Generator, frac: float
) -> tuple[int, int, int, int]:
    """Move one random side of ``box`` into the (Y, X) bool object by ``frac`` of its extent."""
    side = int(rng.integers(4))
    tight = tight_box(obj)
    extent = (tight[2] - tight[0]) if side in (0, 2) else (tight[3] - tight[1])
    if extent < 2:
        return box
    cut = min(max(1, int(np.rint(frac * extent))), extent - 1)
    edges = list(box)
    edges[side] = tight[side] + cut if side < 2 else tight[side] - cut
    return clip_box((edges[0], edges[1], edges[2], edges[3]), obj.shape)


def apply_noise(prompt: Prompt, obj: np.ndarray, rng: np.random.Generator, noise: PromptNoise) -> Prompt:
    """Apply ``noise`` to a prompt of the (Y, X) bool object ``obj``: points first, then the box."""
    if not (noise.jitter_px or noise.misclick or noise.missed_edge):  # no noise (missed_frac alone does nothing)
        return prompt
    points, labels, box = prompt.points.astype(np.float64), prompt.point_labels, prompt.box
    if prompt.n_points and noise.jitter_px > 0:
        points = jitter_points(points, labels, obj, rng, noise.jitter_px)
    if prompt.n_points and noise.misclick > 0:
        points = misclick_points(points, labels, obj, rng, noise.misclick)
    if box is not None and noise.missed_edge > 0 and rng.random() < noise.missed_edge:
        box = miss_edge(box, obj, rng, noise.missed_frac)
    return Prompt(box, points.astype(np.float32), labels, prompt.mask)
