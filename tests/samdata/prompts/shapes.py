"""Random blob masks and geometry checks shared by the prompt scheme tests.

A plain module rather than conftest fixtures: hypothesis strategies are needed when ``@given`` is applied.
"""

from __future__ import annotations

import numpy as np
from hypothesis import settings
from hypothesis import strategies as st
from scipy import ndimage

FAST = settings(max_examples=40, deadline=None)
SEEDS = st.integers(0, 2**32 - 1)


def blob(h: int, w: int, cy: int, cx: int, ry: int, rx: int, ellipse: bool) -> np.ndarray:
    """An ellipse or rectangle (Y, X) bool mask; always holds its centre pixel."""
    yy, xx = np.mgrid[:h, :w]
    if ellipse:
        return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
    return (np.abs(yy - cy) <= ry) & (np.abs(xx - cx) <= rx)


@st.composite
def blobs(draw: st.DrawFn) -> np.ndarray:
    """A random ellipse or rectangle, sometimes joined with a second one, in a 32..96 px image."""
    h, w = draw(st.integers(32, 96)), draw(st.integers(32, 96))
    mask = np.zeros((h, w), bool)
    for _ in range(draw(st.integers(1, 2))):
        mask |= blob(
            h,
            w,
            draw(st.integers(0, h - 1)),
            draw(st.integers(0, w - 1)),
            draw(st.integers(1, h // 2)),
            draw(st.integers(1, w // 2)),
            draw(st.booleans()),
        )
    return mask


def padded_edt(region: np.ndarray) -> np.ndarray:
    """Reference depth map over the whole image: distance to the nearest non-region pixel or the border."""
    return ndimage.distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1]


def inside(mask: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Whether each (x, y) integer point lies on a True pixel of ``mask``."""
    xs, ys = points[:, 0].astype(int), points[:, 1].astype(int)
    return mask[ys, xs]


def in_image(box: tuple[int, int, int, int], shape: tuple[int, ...]) -> bool:
    """Whether a box lies within a (Y, X) image and is non-empty."""
    x0, y0, x1, y1 = box
    return 0 <= x0 < x1 <= shape[1] and 0 <= y0 < y1 <= shape[0]
